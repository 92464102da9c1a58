//! `fs`-specific tests (the shared blob behaviours are in tests/behavior/blob.rs).

use futures::StreamExt;

use super::*;
use crate::store::blob::stream_of;

async fn store() -> (tempfile::TempDir, FsStore) {
    let dir = tempfile::tempdir().unwrap();
    let s = FsStore::open("files", FsConfig::new(dir.path()))
        .await
        .unwrap();
    (dir, s)
}

#[tokio::test]
async fn a_put_that_fails_half_way_leaves_no_file_and_no_temp() {
    let (dir, s) = store().await;
    s.put_bytes("keep", b"old".to_vec(), PutOptions::new())
        .await
        .unwrap();
    let body = futures::stream::iter(vec![
        Ok(Bytes::from(vec![1u8; 3 << 20])),
        Err(std::io::Error::other("client went away")),
    ])
    .boxed();
    let e = BlobStore::put(&s, "keep", body, PutOptions::new())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("client went away"), "{e}");
    assert_eq!(s.get_bytes("keep").await.unwrap().unwrap(), b"old");
    let tmp: Vec<_> = std::fs::read_dir(dir.path().join(".polyrouter/tmp"))
        .unwrap()
        .collect();
    assert!(tmp.is_empty(), "temp files left: {tmp:?}");
}

#[tokio::test]
async fn temp_files_of_a_crashed_put_are_removed_at_open() {
    let (dir, s) = store().await;
    let crashed = dir.path().join(".polyrouter/tmp/crashed");
    std::fs::write(&crashed, b"half").unwrap();
    let old = std::time::SystemTime::now() - ABANDONED_AFTER - std::time::Duration::from_secs(1);
    std::fs::File::options()
        .write(true)
        .open(&crashed)
        .unwrap()
        .set_modified(old)
        .unwrap();
    // A put in progress (recently written) is left alone.
    let active = dir.path().join(".polyrouter/tmp/active");
    std::fs::write(&active, b"busy").unwrap();
    drop(s);
    let s = FsStore::open("files", FsConfig::new(dir.path()))
        .await
        .unwrap();
    assert!(!crashed.exists());
    assert!(active.exists());
    let page = s.list(&ListOptions::default()).await.unwrap();
    assert!(page.blobs.is_empty(), "{page:?}");
}

#[tokio::test]
async fn a_key_cannot_be_a_blob_and_a_directory() {
    let (_dir, s) = store().await;
    s.put_bytes("a/b", b"1".to_vec(), PutOptions::new())
        .await
        .unwrap();
    let e = s
        .put_bytes("a", b"2".to_vec(), PutOptions::new())
        .await
        .unwrap_err();
    assert!(matches!(e, Error::InvalidInput { .. }), "{e}");
    let e = s
        .put_bytes("a/b/c", b"3".to_vec(), PutOptions::new())
        .await
        .unwrap_err();
    assert!(matches!(e, Error::InvalidInput { .. }), "{e}");
    assert_eq!(s.get_bytes("a/b").await.unwrap().unwrap(), b"1");
}

#[tokio::test]
async fn delete_prunes_empty_directories() {
    let (dir, s) = store().await;
    s.put_bytes("x/y/z", b"1".to_vec(), PutOptions::new())
        .await
        .unwrap();
    assert!(s.delete("x/y/z").await.unwrap());
    assert!(!dir.path().join("x").exists());
    assert!(!s.delete("x/y/z").await.unwrap());
}

#[tokio::test]
async fn escaping_keys_touch_nothing_outside_the_root() {
    let outer = tempfile::tempdir().unwrap();
    let root = outer.path().join("root");
    let s = FsStore::open("files", FsConfig::new(&root)).await.unwrap();
    for key in [
        "../escaped",
        "/tmp/escaped-abs",
        "a/../../escaped",
        "..\\escaped",
    ] {
        let e = BlobStore::put(&s, key, stream_of(b"x".to_vec()), PutOptions::new())
            .await
            .unwrap_err();
        assert!(matches!(e, Error::InvalidInput { .. }), "{key}: {e}");
        assert!(matches!(s.head(key).await, Err(Error::InvalidInput { .. })));
        assert!(matches!(
            s.delete(key).await,
            Err(Error::InvalidInput { .. })
        ));
    }
    assert!(!outer.path().join("escaped").exists());
    assert!(!std::path::Path::new("/tmp/escaped-abs").exists());
}

#[tokio::test]
async fn a_missing_root_without_create_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        "[stores.f]\nkind = \"fs\"\nroot = \"{}\"\ncreate_if_missing = false\n",
        dir.path().join("missing").display()
    );
    let e = crate::Router::from_toml_str(&toml).await.unwrap_err();
    assert!(matches!(e, Error::Config { .. }), "{e}");
    assert!(e.to_string().contains("stores.f.root"), "{e}");
}

#[tokio::test]
async fn signed_urls_are_unsupported_and_say_why() {
    let (_dir, s) = store().await;
    s.put_bytes("a.png", b"png".to_vec(), PutOptions::new())
        .await
        .unwrap();
    let e = s
        .signed_url("a.png", std::time::Duration::from_secs(60))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Unsupported { .. }), "{e:?}");
    let text = e.to_string();
    assert!(
        text.contains("store `files`") && text.contains("signed URLs") && text.contains("`fs`"),
        "{text}"
    );
}
