//! `azblob`-specific tests against Azurite (the shared blob behaviours are
//! in tests/behavior/blob.rs). Azurite must answer on
//! `POLYROUTER_TEST_AZBLOB_URL` (default `http://127.0.0.1:10000/devstoreaccount1`;
//! `scripts/emulators/start` starts it): these tests fail, not skip, without it.

use super::*;
use crate::store::blob::stream_of;

fn endpoint() -> String {
    std::env::var("POLYROUTER_TEST_AZBLOB_URL")
        .unwrap_or_else(|_| format!("http://127.0.0.1:10000/{DEV_ACCOUNT}"))
}

fn container(tag: &str) -> String {
    format!("pr-unit-{tag}-{}", std::process::id())
}

/// A wrong key: same length and alphabet, other bytes.
const WRONG_KEY: &str =
    "AAAAvdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

#[tokio::test]
async fn round_trip_and_clean_up() {
    let s = AzBlobStore::open("az", AzBlobConfig::dev(&container("rt"), &endpoint()))
        .await
        .unwrap();
    let m = s
        .put_bytes(
            "a/b c?.txt",
            b"hello".to_vec(),
            PutOptions::new().content_type("text/plain"),
        )
        .await
        .unwrap();
    assert_eq!(m.size, 5);
    assert_eq!(m.content_type.as_deref(), Some("text/plain"));
    assert_eq!(s.get_bytes("a/b c?.txt").await.unwrap().unwrap(), b"hello");
    s.delete_container().await.unwrap();
    assert!(s.ping().await.is_err(), "the container is gone");
}

#[tokio::test]
async fn a_wrong_key_is_refused_by_the_service_and_never_shown() {
    // Create the container with the right key, then talk to it with a wrong one.
    let good = AzBlobStore::open("az", AzBlobConfig::dev(&container("key"), &endpoint()))
        .await
        .unwrap();
    let mut cfg = AzBlobConfig::dev(&container("key"), &endpoint());
    cfg.key = Some(crate::config::Secret::new(WRONG_KEY));
    cfg.create_if_missing = false;
    let e = AzBlobStore::open("az", cfg).await.unwrap_err();
    good.delete_container().await.unwrap();
    let text = e.to_string();
    assert!(matches!(e, Error::Backend { .. }), "{e:?}");
    assert!(
        text.contains("403") && text.contains("store `az`"),
        "{text}"
    );
    assert!(
        !text.contains("AAAAvdM0") && !format!("{e:?}").contains("AAAAvdM0"),
        "{text}"
    );
}

#[tokio::test]
async fn a_stopped_service_is_unavailable_naming_the_store_without_secrets() {
    // Nothing listens on port 9: what a stopped Azurite looks like.
    let cfg = AzBlobConfig {
        max_retries: 1,
        ..AzBlobConfig::dev("stopped", &format!("http://127.0.0.1:9/{DEV_ACCOUNT}"))
    };
    let e = AzBlobStore::open("images", cfg).await.unwrap_err();
    assert!(e.is_transient(), "{e:?}");
    let text = format!("{e} {e:?}");
    assert!(text.contains("store `images`"), "{text}");
    assert!(!text.contains(&DEV_KEY[..12]), "{text}");
}

#[tokio::test]
async fn a_connection_string_works_and_is_redacted() {
    let cs = format!(
        "DefaultEndpointsProtocol=http;AccountName={DEV_ACCOUNT};AccountKey={DEV_KEY};BlobEndpoint={};",
        endpoint()
    );
    let toml = format!(
        "[stores.img]\nkind = \"azblob\"\ncontainer = \"{}\"\ncreate_if_missing = true\nconnection_string = \"{cs}\"\n",
        container("cs")
    );
    let router = crate::Router::from_toml_str(&toml).await.unwrap();
    assert!(!format!("{:?}", router.config()).contains(&DEV_KEY[..12]));
    let blobs = router.blobs("img").unwrap();
    blobs
        .put_bytes("k", b"v".to_vec(), PutOptions::new())
        .await
        .unwrap();
    assert_eq!(blobs.get_bytes("k").await.unwrap().unwrap(), b"v");
    let store = router.store("img").unwrap();
    assert!(!store.location().contains(&DEV_KEY[..12]));
    AzBlobStore::open("img", AzBlobConfig::dev(&container("cs"), &endpoint()))
        .await
        .unwrap()
        .delete_container()
        .await
        .unwrap();
}

#[tokio::test]
async fn a_missing_container_without_create_is_a_config_error() {
    let toml = format!(
        "[stores.img]\nkind = \"azblob\"\ncontainer = \"{}\"\naccount = \"{DEV_ACCOUNT}\"\nkey = \"{DEV_KEY}\"\nendpoint = \"{}\"\n",
        container("missing"),
        endpoint()
    );
    let e = crate::Router::from_toml_str(&toml).await.unwrap_err();
    assert!(matches!(e, Error::Config { .. }), "{e}");
    assert!(e.to_string().contains("does not exist"), "{e}");
    assert!(!e.to_string().contains(&DEV_KEY[..12]), "{e}");
}

#[tokio::test]
async fn bad_options_are_config_errors() {
    for (opts, needle) in [
        (
            "container = \"Bad_Name\"\naccount = \"a\"\nkey = \"k\"\n",
            "container name",
        ),
        ("container = \"ok-name\"\n", "connection_string"),
        ("container = \"ok-name\"\naccount = \"a\"\n", "needs `key`"),
    ] {
        let toml = format!("[stores.img]\nkind = \"azblob\"\n{opts}");
        let e = crate::Router::from_toml_str(&toml).await.unwrap_err();
        assert!(matches!(e, Error::Config { .. }), "{e}");
        assert!(e.to_string().contains(needle), "{e}");
    }
}

#[tokio::test]
async fn a_big_body_goes_up_in_blocks_and_an_interrupted_one_leaves_nothing() {
    let s = AzBlobStore::open("az", AzBlobConfig::dev(&container("blocks"), &endpoint()))
        .await
        .unwrap();
    // 9 MiB + 1: three blocks.
    let data: Vec<u8> = (0..(9 << 20) + 1).map(|i| (i % 251) as u8).collect();
    let m = BlobStore::put(&s, "big", stream_of(data.clone()), PutOptions::new())
        .await
        .unwrap();
    assert_eq!(m.size, data.len() as u64);
    let part = BlobStore::get(
        &s,
        "big",
        Some(ByteRange::new(4 << 20, Some((4 << 20) + 10))),
    )
    .await
    .unwrap()
    .unwrap()
    .bytes()
    .await
    .unwrap();
    assert_eq!(part, &data[4 << 20..(4 << 20) + 10]);
    assert_eq!(s.get_bytes("big").await.unwrap().unwrap(), data);
    let body = futures::stream::iter(vec![
        Ok(Bytes::from(vec![7u8; 5 << 20])),
        Err(std::io::Error::other("client went away")),
    ])
    .boxed();
    let e = BlobStore::put(&s, "half", body, PutOptions::new())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("client went away"), "{e}");
    assert!(s.head("half").await.unwrap().is_none());
    s.delete_container().await.unwrap();
}
