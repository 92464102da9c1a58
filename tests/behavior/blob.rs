//! Blob behaviours: every store with the `blob` capability (memory, fs,
//! azblob). Each trial works under its own key prefix (`ctx.id`); the fs
//! root and the azblob container are per run and removed at the end.

use std::collections::BTreeMap;

use bytes::Bytes;
use futures::StreamExt;
use polyrouter::store::blob::{
    BlobCondition, BlobStore, ByteRange, ByteStream, ListOptions, PutOptions,
};
use polyrouter::{Capabilities, Error, Result, Router};

use crate::behaviour;
use crate::harness::{Behaviour, Ctx};

fn blob(c: &Capabilities) -> Option<&'static str> {
    (!c.blob).then_some("blobs")
}

pub fn behaviours() -> Vec<Behaviour> {
    vec![
        behaviour!(blob_round_trip_with_metadata, blob),
        behaviour!(blob_overwrite_changes_the_etag, blob),
        behaviour!(blob_ranges, blob),
        behaviour!(blob_list_pages_every_key_once, blob),
        behaviour!(blob_list_with_delimiter, blob),
        behaviour!(blob_delete_and_copy, blob),
        behaviour!(blob_conditional_put_conflicts_and_writes_nothing, blob),
        behaviour!(blob_interrupted_put_leaves_nothing_visible, blob),
        behaviour!(blob_big_body_streams_in_chunks, blob),
        behaviour!(blob_bad_keys_are_refused, blob),
        behaviour!(blob_cascade_deletes_after_the_record, blob),
        behaviour!(blob_only_store_refuses_entities, |c: &Capabilities| {
            (!c.blob || c.records).then_some("a blob-only store")
        }),
    ]
}

struct B {
    router: Router,
    prefix: String,
}

impl B {
    async fn new(ctx: &Ctx) -> Result<B> {
        Ok(B {
            router: ctx.router().await?,
            prefix: format!("{}/", ctx.id),
        })
    }

    fn s(&self) -> &dyn BlobStore {
        self.router.blobs("s").expect("store s holds blobs")
    }

    fn k(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }
}

fn conflict(r: Result<impl std::fmt::Debug>) {
    match r {
        Err(Error::Conflict { .. }) => {}
        other => panic!("expected a conflict, got {other:?}"),
    }
}

fn invalid(r: Result<impl std::fmt::Debug>, key: &str) {
    match r {
        Err(e @ Error::InvalidInput { .. }) => {
            assert!(e.to_string().contains("store `s`"), "{e}")
        }
        other => panic!("expected InvalidInput for {key:?}, got {other:?}"),
    }
}

async fn blob_round_trip_with_metadata(ctx: Ctx) -> Result<()> {
    let b = B::new(&ctx).await?;
    let mut metadata = BTreeMap::new();
    metadata.insert("owner".to_string(), "ann".to_string());
    metadata.insert("purpose".to_string(), "test value 1".to_string());
    // Keys with characters URLs and file systems treat specially.
    for (i, key) in [
        "plain.bin",
        "with space/ü ñ 日本.png",
        "q?x#y%20z&=+.txt",
        "..dots/x..",
    ]
    .into_iter()
    .enumerate()
    {
        let key = b.k(key);
        let data: Vec<u8> = (0..=255u8).cycle().take(1000 + i).collect();
        let opts = PutOptions {
            content_type: Some("image/png".into()),
            metadata: metadata.clone(),
            condition: BlobCondition::None,
        };
        let put = b.s().put_bytes(&key, data.clone(), opts).await?;
        assert_eq!(
            (put.key.as_str(), put.size),
            (key.as_str(), data.len() as u64)
        );
        assert!(!put.etag.is_empty());
        let head = b.s().head(&key).await?.expect("head after put");
        assert_eq!(head.size, data.len() as u64);
        assert_eq!(head.etag, put.etag);
        assert_eq!(head.content_type.as_deref(), Some("image/png"));
        assert_eq!(head.metadata, metadata);
        assert!(
            (chrono::Utc::now() - head.last_modified)
                .num_minutes()
                .abs()
                < 10
        );
        let got = b.s().get(&key, None).await?.expect("get after put");
        assert_eq!(got.meta.etag, put.etag);
        assert_eq!(got.bytes().await?, data);
    }
    // An empty blob.
    let empty = b.k("empty");
    let m = b
        .s()
        .put_bytes(&empty, Vec::new(), PutOptions::new())
        .await?;
    assert_eq!(m.size, 0);
    assert_eq!(b.s().get_bytes(&empty).await?, Some(Vec::new()));
    // Absent.
    assert!(b.s().head(&b.k("absent")).await?.is_none());
    assert!(b.s().get(&b.k("absent"), None).await?.is_none());
    Ok(())
}

async fn blob_overwrite_changes_the_etag(ctx: Ctx) -> Result<()> {
    let b = B::new(&ctx).await?;
    let key = b.k("o");
    let first = b
        .s()
        .put_bytes(&key, b"one".to_vec(), PutOptions::new().meta("v", "1"))
        .await?;
    let second = b
        .s()
        .put_bytes(&key, b"two!".to_vec(), PutOptions::new())
        .await?;
    assert_ne!(first.etag, second.etag);
    let head = b.s().head(&key).await?.unwrap();
    assert_eq!((head.size, head.etag.as_str()), (4, second.etag.as_str()));
    assert!(
        head.metadata.is_empty(),
        "an overwrite replaces the metadata"
    );
    assert_eq!(b.s().get_bytes(&key).await?.unwrap(), b"two!");
    Ok(())
}

async fn blob_ranges(ctx: Ctx) -> Result<()> {
    let b = B::new(&ctx).await?;
    let key = b.k("r");
    let data: Vec<u8> = (0..100u8).collect();
    b.s()
        .put_bytes(&key, data.clone(), PutOptions::new())
        .await?;
    let read = |start, end| {
        let key = key.clone();
        let s = b.s();
        async move {
            let blob = s
                .get(&key, Some(ByteRange::new(start, end)))
                .await?
                .unwrap();
            assert_eq!(blob.meta.size, 100, "meta.size is the whole blob");
            blob.bytes().await
        }
    };
    assert_eq!(read(10, Some(20)).await?, &data[10..20]);
    assert_eq!(read(90, None).await?, &data[90..]);
    assert_eq!(
        read(95, Some(1000)).await?,
        &data[95..],
        "the end is clamped"
    );
    assert_eq!(read(0, Some(1)).await?, &data[..1]);
    assert_eq!(read(100, None).await?, Vec::<u8>::new());
    invalid(
        b.s().get(&key, Some(ByteRange::new(101, None))).await,
        "101..",
    );
    invalid(
        b.s().get(&key, Some(ByteRange::new(20, Some(10)))).await,
        "20..10",
    );
    Ok(())
}

async fn blob_list_pages_every_key_once(ctx: Ctx) -> Result<()> {
    let b = B::new(&ctx).await?;
    let mut want: Vec<String> = (0..7).map(|i| b.k(&format!("p/{i:02}"))).collect();
    want.push(b.k("p/sub/x"));
    for k in &want {
        b.s()
            .put_bytes(k, k.as_bytes().to_vec(), PutOptions::new())
            .await?;
    }
    b.s()
        .put_bytes(&b.k("other"), b"x".to_vec(), PutOptions::new())
        .await?;
    want.sort();
    let mut opts = ListOptions::prefix(b.k("p/")).limit(3);
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let page = b.s().list(&opts).await?;
        pages += 1;
        assert!(page.blobs.len() <= 3);
        assert!(page.prefixes.is_empty());
        for m in &page.blobs {
            assert_eq!(m.size, m.key.len() as u64);
        }
        seen.extend(page.blobs.iter().map(|m| m.key.clone()));
        match opts.next(&page) {
            Some(next) => opts = next,
            None => break,
        }
        assert!(pages < 10, "paging does not end");
    }
    assert_eq!(seen, want, "every key once, in order");
    assert!(pages >= 3);
    let none = b.s().list(&ListOptions::prefix(b.k("nothing/"))).await?;
    assert!(none.blobs.is_empty() && none.continuation.is_none());
    Ok(())
}

async fn blob_list_with_delimiter(ctx: Ctx) -> Result<()> {
    let b = B::new(&ctx).await?;
    for k in ["d/a/1", "d/a/2", "d/b", "d/c/x/y", "d/e"] {
        b.s()
            .put_bytes(&b.k(k), b"x".to_vec(), PutOptions::new())
            .await?;
    }
    let page = b
        .s()
        .list(&ListOptions::prefix(b.k("d/")).delimiter("/"))
        .await?;
    let blobs: Vec<&str> = page.blobs.iter().map(|m| m.key.as_str()).collect();
    assert_eq!(blobs, vec![b.k("d/b"), b.k("d/e")]);
    assert_eq!(page.prefixes, vec![b.k("d/a/"), b.k("d/c/")]);
    assert!(page.continuation.is_none());
    // One entry per page: each blob and prefix exactly once.
    let mut opts = ListOptions::prefix(b.k("d/")).delimiter("/").limit(1);
    let mut entries = Vec::new();
    for _ in 0..10 {
        let page = b.s().list(&opts).await?;
        entries.extend(page.blobs.iter().map(|m| m.key.clone()));
        entries.extend(page.prefixes.iter().cloned());
        match opts.next(&page) {
            Some(n) => opts = n,
            None => break,
        }
    }
    entries.sort();
    let want: Vec<String> = ["d/a/", "d/b", "d/c/", "d/e"]
        .iter()
        .map(|k| b.k(k))
        .collect();
    assert_eq!(entries, want);
    Ok(())
}

async fn blob_delete_and_copy(ctx: Ctx) -> Result<()> {
    let b = B::new(&ctx).await?;
    let (src, dst) = (b.k("src"), b.k("copy/dst"));
    b.s()
        .put_bytes(
            &src,
            b"payload".to_vec(),
            PutOptions::new().content_type("text/plain").meta("m", "1"),
        )
        .await?;
    let copied = b.s().copy(&src, &dst).await?;
    assert_eq!(copied.size, 7);
    let head = b.s().head(&dst).await?.unwrap();
    assert_eq!(head.content_type.as_deref(), Some("text/plain"));
    assert_eq!(head.metadata.get("m").map(String::as_str), Some("1"));
    assert_eq!(b.s().get_bytes(&dst).await?.unwrap(), b"payload");
    assert!(b.s().delete(&src).await?);
    assert!(!b.s().delete(&src).await?);
    assert!(b.s().head(&src).await?.is_none());
    assert_eq!(
        b.s().get_bytes(&dst).await?.unwrap(),
        b"payload",
        "the copy stays"
    );
    match b.s().copy(&src, &b.k("never")).await {
        Err(Error::NotFound { .. }) => {}
        other => panic!("copying a missing blob: {other:?}"),
    }
    assert!(b.s().head(&b.k("never")).await?.is_none());
    Ok(())
}

async fn blob_conditional_put_conflicts_and_writes_nothing(ctx: Ctx) -> Result<()> {
    let b = B::new(&ctx).await?;
    let key = b.k("c");
    let if_absent = || PutOptions::new().condition(BlobCondition::IfAbsent);
    let v1 = b.s().put_bytes(&key, b"v1".to_vec(), if_absent()).await?;
    conflict(b.s().put_bytes(&key, b"v2".to_vec(), if_absent()).await);
    assert_eq!(b.s().get_bytes(&key).await?.unwrap(), b"v1");
    let stale = PutOptions::new().condition(BlobCondition::IfMatch("\"not-the-etag\"".into()));
    conflict(b.s().put_bytes(&key, b"v2".to_vec(), stale).await);
    assert_eq!(b.s().head(&key).await?.unwrap().etag, v1.etag);
    let current = PutOptions::new().condition(BlobCondition::IfMatch(v1.etag.clone()));
    let v2 = b
        .s()
        .put_bytes(&key, b"v2".to_vec(), current.clone())
        .await?;
    assert_ne!(v2.etag, v1.etag);
    // The old etag no longer matches.
    conflict(b.s().put_bytes(&key, b"v3".to_vec(), current).await);
    assert_eq!(b.s().get_bytes(&key).await?.unwrap(), b"v2");
    // If-match on an absent blob fails too, and creates nothing.
    let absent = b.k("c-absent");
    let m = PutOptions::new().condition(BlobCondition::IfMatch(v2.etag.clone()));
    conflict(b.s().put_bytes(&absent, b"x".to_vec(), m).await);
    assert!(b.s().head(&absent).await?.is_none());
    // A streamed (multi-chunk) conditional put obeys the condition as well.
    let big: ByteStream =
        futures::stream::iter((0..6).map(|_| Ok(Bytes::from(vec![1u8; 1 << 20])))).boxed();
    conflict(b.s().put(&key, big, if_absent()).await);
    assert_eq!(b.s().get_bytes(&key).await?.unwrap(), b"v2");
    Ok(())
}

/// A body that yields `good` bytes and then fails.
fn failing_body(good: usize) -> ByteStream {
    futures::stream::iter(vec![
        Ok(Bytes::from(vec![9u8; good / 2])),
        Ok(Bytes::from(vec![9u8; good - good / 2])),
        Err(std::io::Error::other("connection reset by the client")),
    ])
    .boxed()
}

async fn blob_interrupted_put_leaves_nothing_visible(ctx: Ctx) -> Result<()> {
    let b = B::new(&ctx).await?;
    // Small and block-sized bodies: both must vanish.
    for (i, good) in [10usize, 6 << 20].into_iter().enumerate() {
        let fresh = b.k(&format!("i/fresh{i}"));
        let e = b
            .s()
            .put(&fresh, failing_body(good), PutOptions::new())
            .await
            .unwrap_err();
        assert!(
            e.to_string().contains("connection reset by the client"),
            "{e}"
        );
        assert!(e.to_string().contains("store `s`"), "{e}");
        assert!(b.s().head(&fresh).await?.is_none());
        assert!(b.s().get(&fresh, None).await?.is_none());
        let kept = b.k(&format!("i/kept{i}"));
        let before = b
            .s()
            .put_bytes(&kept, b"old".to_vec(), PutOptions::new())
            .await?;
        assert!(
            b.s()
                .put(&kept, failing_body(good), PutOptions::new())
                .await
                .is_err()
        );
        let after = b.s().head(&kept).await?.unwrap();
        assert_eq!((after.etag, after.size), (before.etag, 3));
        assert_eq!(b.s().get_bytes(&kept).await?.unwrap(), b"old");
    }
    let listed = b.s().list(&ListOptions::prefix(b.k("i/"))).await?;
    let keys: Vec<&str> = listed.blobs.iter().map(|m| m.key.as_str()).collect();
    assert_eq!(keys, vec![b.k("i/kept0"), b.k("i/kept1")]);
    Ok(())
}

async fn blob_big_body_streams_in_chunks(ctx: Ctx) -> Result<()> {
    let b = B::new(&ctx).await?;
    let key = b.k("big");
    // 9 MiB + 3 bytes in uneven chunks, generated (crosses every block size).
    let size: usize = (9 << 20) + 3;
    let byte = |i: usize| (i * 7 % 251) as u8;
    let chunks: Vec<std::io::Result<Bytes>> = (0..size)
        .step_by(777_777)
        .map(|at| {
            Ok(Bytes::from(
                (at..(at + 777_777).min(size))
                    .map(byte)
                    .collect::<Vec<u8>>(),
            ))
        })
        .collect();
    let meta = b
        .s()
        .put(
            &key,
            futures::stream::iter(chunks).boxed(),
            PutOptions::new(),
        )
        .await?;
    assert_eq!(meta.size, size as u64);
    let mut body = b.s().get(&key, None).await?.unwrap().body;
    let (mut at, mut chunks, mut biggest) = (0usize, 0, 0);
    while let Some(chunk) = body.next().await {
        let chunk = chunk?;
        for (j, v) in chunk.iter().enumerate() {
            assert_eq!(*v, byte(at + j), "byte {}", at + j);
        }
        at += chunk.len();
        chunks += 1;
        biggest = biggest.max(chunk.len());
    }
    assert_eq!(at, size);
    assert!(chunks > 1, "the body arrives in chunks");
    assert!(biggest <= 16 << 20, "chunks are bounded: {biggest}");
    Ok(())
}

async fn blob_bad_keys_are_refused(ctx: Ctx) -> Result<()> {
    let b = B::new(&ctx).await?;
    b.s()
        .put_bytes(&b.k("safe"), b"x".to_vec(), PutOptions::new())
        .await?;
    let long = "x".repeat(1025);
    for key in [
        "",
        "a\0b",
        "../escape",
        &format!("{}../../escape", b.prefix),
        "/etc/passwd",
        "a/./b",
        "..",
        "dir/",
        "a\\..\\b",
        &long,
    ] {
        invalid(
            b.s().put_bytes(key, b"x".to_vec(), PutOptions::new()).await,
            key,
        );
        invalid(b.s().head(key).await, key);
        invalid(b.s().get(key, None).await, key);
        invalid(b.s().delete(key).await, key);
        invalid(b.s().copy(&b.k("safe"), key).await, key);
    }
    let mut bad = BTreeMap::new();
    bad.insert("not-an-identifier".to_string(), "v".to_string());
    let opts = PutOptions {
        metadata: bad,
        ..PutOptions::new()
    };
    invalid(
        b.s().put_bytes(&b.k("m"), b"x".to_vec(), opts).await,
        "metadata",
    );
    assert!(b.s().head(&b.k("m")).await?.is_none());
    // Nothing was written outside the trial's prefix.
    let all = b.s().list(&ListOptions::prefix(b.prefix.clone())).await?;
    assert_eq!(all.blobs.len(), 1);
    Ok(())
}

async fn blob_cascade_deletes_after_the_record(ctx: Ctx) -> Result<()> {
    use crate::entities::Product;
    // Products in an in-process record store; their images in the store under test.
    let cfg = format!(
        "{}[stores.main]\nkind = \"memory\"\n[entities.product]\nstore = \"main\"\ncascade_blobs = [{{ store = \"s\", field = \"image_key\" }}, {{ store = \"s\", field = \"gallery\" }}]\n",
        ctx.blob_store_config()
    );
    let router = Router::from_toml_str(&cfg).await?;
    let images = router.blobs("s")?;
    let repo = router.repo::<Product>().await?;
    let k = |s: &str| format!("{}/{s}", ctx.id);
    for key in ["p1.png", "g1.png", "g2.png", "p2.png", "other.png"] {
        images
            .put_bytes(&k(key), b"img".to_vec(), PutOptions::new())
            .await?;
    }
    repo.put(&Product {
        id: "p1".into(),
        name: "lamp".into(),
        image_key: Some(k("p1.png")),
        gallery: vec![k("g1.png"), k("g2.png")],
    })
    .await?;
    repo.put(&Product {
        id: "p2".into(),
        name: "desk".into(),
        image_key: Some(k("p2.png")),
        gallery: vec![],
    })
    .await?;
    repo.put(&Product {
        id: "p3".into(),
        name: "none".into(),
        image_key: None,
        gallery: vec![],
    })
    .await?;
    assert!(repo.delete("p1").await?);
    assert!(repo.get("p1").await?.is_none());
    for key in ["p1.png", "g1.png", "g2.png"] {
        assert!(
            images.head(&k(key)).await?.is_none(),
            "{key} deleted with its record"
        );
    }
    assert!(
        images.head(&k("p2.png")).await?.is_some(),
        "other records' blobs stay"
    );
    assert!(images.head(&k("other.png")).await?.is_some());
    assert!(
        repo.delete("p3").await?,
        "a record without blobs deletes fine"
    );
    // A failed conditional delete keeps both record and blob.
    assert!(
        repo.delete_if("p2", polyrouter::Precondition::Version(99))
            .await
            .is_err()
    );
    assert!(images.head(&k("p2.png")).await?.is_some());
    // delete_many cascades too.
    assert_eq!(repo.delete_many(["p2", "missing"]).await?, 1);
    assert!(images.head(&k("p2.png")).await?.is_none());
    Ok(())
}

async fn blob_only_store_refuses_entities(ctx: Ctx) -> Result<()> {
    let cfg = format!(
        "{}[entities.product]\nstore = \"s\"\n",
        ctx.blob_store_config()
    );
    match Router::from_toml_str(&cfg).await {
        Err(e @ Error::Config { .. }) => {
            let text = e.to_string();
            assert!(text.contains("entities.product.store"), "{text}");
            assert!(text.contains("blobs only"), "{text}");
        }
        other => panic!("routing an entity to a blob-only store: {other:?}"),
    }
    Ok(())
}
