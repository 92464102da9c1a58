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
        behaviour!(blob_etags_are_quoted_alike_and_new_on_every_write, blob),
        behaviour!(blob_content_type_as_given_or_octet_stream, blob),
        behaviour!(blob_metadata_a_store_cannot_keep_is_refused_up_front, blob),
        behaviour!(blob_if_match_takes_only_an_etag_a_store_returned, blob),
        behaviour!(blob_key_that_is_only_a_prefix_is_absent, blob),
        behaviour!(
            blob_concurrent_unconditional_puts_leave_one_whole_body,
            blob
        ),
        behaviour!(blob_concurrent_conditional_puts_let_one_win, blob),
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
        assert_eq!(head.content_type, "image/png");
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
    assert_eq!(head.content_type, "text/plain");
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
    bad.insert("Upper".to_string(), "v".to_string());
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

async fn blob_etags_are_quoted_alike_and_new_on_every_write(ctx: Ctx) -> Result<()> {
    let b = B::new(&ctx).await?;
    let key = b.k("e/x");
    let quoted = |e: &str| e.len() > 2 && e.starts_with('"') && e.ends_with('"');
    let first = b
        .s()
        .put_bytes(&key, b"same".to_vec(), PutOptions::new().meta("v", "1"))
        .await?;
    assert!(quoted(&first.etag), "{}", first.etag);
    // One etag, one form, from every operation.
    let head = b.s().head(&key).await?.unwrap();
    let got = b.s().get(&key, None).await?.unwrap();
    let listed = b.s().list(&ListOptions::prefix(b.k("e/"))).await?;
    let copied = b.s().copy(&key, &b.k("e/y")).await?;
    assert!(quoted(&copied.etag), "{}", copied.etag);
    assert_eq!(head.etag, first.etag);
    assert_eq!(got.meta.etag, first.etag);
    let in_list: Vec<&str> = listed.blobs.iter().map(|m| m.etag.as_str()).collect();
    assert_eq!(in_list, vec![first.etag.as_str()], "list before the copy");
    let listed = b.s().list(&ListOptions::prefix(b.k("e/"))).await?;
    assert_eq!(listed.blobs[0], head, "list and head say the same");
    assert_eq!(listed.blobs[1].etag, copied.etag);
    assert_ne!(copied.etag, first.etag, "a copy is a write: a new etag");
    // The same bytes again, other metadata: a new etag, and the old one is stale.
    let second = b
        .s()
        .put_bytes(&key, b"same".to_vec(), PutOptions::new().meta("v", "2"))
        .await?;
    assert_ne!(second.etag, first.etag, "every write gets a new etag");
    let stale = PutOptions::new().condition(BlobCondition::IfMatch(first.etag.clone()));
    conflict(b.s().put_bytes(&key, b"same".to_vec(), stale).await);
    let head = b.s().head(&key).await?.unwrap();
    assert_eq!(head.etag, second.etag);
    assert_eq!(head.metadata.get("v").map(String::as_str), Some("2"));
    // Even the same bytes with the same metadata.
    let third = b
        .s()
        .put_bytes(&key, b"same".to_vec(), PutOptions::new().meta("v", "2"))
        .await?;
    assert_ne!(third.etag, second.etag);
    Ok(())
}

async fn blob_content_type_as_given_or_octet_stream(ctx: Ctx) -> Result<()> {
    use polyrouter::store::blob::DEFAULT_CONTENT_TYPE;
    let b = B::new(&ctx).await?;
    let (none, given) = (b.k("ct/none"), b.k("ct/given"));
    let exact = "Text/Plain; Charset=UTF-8; x=\"a b\"";
    let m = b
        .s()
        .put_bytes(&none, b"x".to_vec(), PutOptions::new())
        .await?;
    assert_eq!(m.content_type, DEFAULT_CONTENT_TYPE);
    let m = b
        .s()
        .put_bytes(&given, b"x".to_vec(), PutOptions::new().content_type(exact))
        .await?;
    assert_eq!(m.content_type, exact);
    for (key, want) in [(&none, DEFAULT_CONTENT_TYPE), (&given, exact)] {
        assert_eq!(b.s().head(key).await?.unwrap().content_type, want);
        assert_eq!(b.s().get(key, None).await?.unwrap().meta.content_type, want);
    }
    let listed = b.s().list(&ListOptions::prefix(b.k("ct/"))).await?;
    let types: Vec<&str> = listed
        .blobs
        .iter()
        .map(|m| m.content_type.as_str())
        .collect();
    assert_eq!(types, vec![exact, DEFAULT_CONTENT_TYPE]);
    let copied = b.s().copy(&given, &b.k("ct/copy")).await?;
    assert_eq!(copied.content_type, exact);
    assert_eq!(
        b.s().head(&b.k("ct/copy")).await?.unwrap().content_type,
        exact
    );
    // What a store could not return as given is refused before any write.
    for bad in [
        "",
        " text/plain",
        "text/plain ",
        "text/pl\u{e4}in",
        "text/\nplain",
    ] {
        let key = b.k("ct/bad");
        invalid(
            b.s()
                .put_bytes(&key, b"x".to_vec(), PutOptions::new().content_type(bad))
                .await,
            bad,
        );
        assert!(b.s().head(&key).await?.is_none());
    }
    Ok(())
}

async fn blob_metadata_a_store_cannot_keep_is_refused_up_front(ctx: Ctx) -> Result<()> {
    use polyrouter::store::blob::MAX_METADATA_BYTES;
    let b = B::new(&ctx).await?;
    let key = b.k("md/x");
    let keeps = PutOptions::new()
        .meta("lower_case_1", "  inner  spaces stay  ".trim())
        .meta("_under", "a=b; c,d \"q\" ~!")
        .meta("z", "x".repeat(1000));
    b.s().put_bytes(&key, b"x".to_vec(), keeps.clone()).await?;
    let head = b.s().head(&key).await?.unwrap();
    assert_eq!(
        head.metadata, keeps.metadata,
        "names and values come back exactly"
    );
    let listed = b.s().list(&ListOptions::prefix(b.k("md/"))).await?;
    assert_eq!(listed.blobs[0].metadata, keeps.metadata);
    let before = head.etag;
    let big = "v".repeat(MAX_METADATA_BYTES);
    for (name, value) in [
        ("Owner", "upper-case name"),
        ("owner-name", "hyphen"),
        ("1st", "leading digit"),
        ("caf\u{e9}", "non-ASCII name"),
        ("", "empty name"),
        ("lead", " leading space"),
        ("trail", "trailing space "),
        ("tab", "a\tb"),
        ("newline", "a\nb"),
        ("umlaut", "\u{fc}ber"),
        ("empty", ""),
        ("big", big.as_str()),
    ] {
        invalid(
            b.s()
                .put_bytes(&key, b"y".to_vec(), PutOptions::new().meta(name, value))
                .await,
            name,
        );
    }
    let after = b.s().head(&key).await?.unwrap();
    assert_eq!(after.etag, before, "a refused put writes nothing");
    assert_eq!(b.s().get_bytes(&key).await?.unwrap(), b"x");
    Ok(())
}

async fn blob_if_match_takes_only_an_etag_a_store_returned(ctx: Ctx) -> Result<()> {
    let b = B::new(&ctx).await?;
    let (present, absent) = (b.k("w/present"), b.k("w/absent"));
    let m = b
        .s()
        .put_bytes(&present, b"v1".to_vec(), PutOptions::new())
        .await?;
    let bare = m.etag.trim_matches('"').to_string();
    for etag in ["*", "\"*\"", bare.as_str(), "", "\"\"", "\"a\"b\""] {
        for key in [&present, &absent] {
            let opts = PutOptions::new().condition(BlobCondition::IfMatch(etag.into()));
            invalid(b.s().put_bytes(key, b"v2".to_vec(), opts).await, etag);
        }
    }
    assert_eq!(b.s().get_bytes(&present).await?.unwrap(), b"v1");
    assert!(b.s().head(&absent).await?.is_none());
    Ok(())
}

async fn blob_key_that_is_only_a_prefix_is_absent(ctx: Ctx) -> Result<()> {
    let b = B::new(&ctx).await?;
    let (dir, file) = (b.k("pre/p"), b.k("pre/p/f"));
    b.s()
        .put_bytes(&file, b"f".to_vec(), PutOptions::new())
        .await?;
    assert!(b.s().head(&dir).await?.is_none());
    assert!(b.s().get(&dir, None).await?.is_none());
    assert!(
        b.s()
            .get(&dir, Some(ByteRange::new(0, Some(1))))
            .await?
            .is_none()
    );
    assert!(b.s().get_bytes(&dir).await?.is_none());
    assert!(!b.s().delete(&dir).await?);
    match b.s().copy(&dir, &b.k("pre/copy")).await {
        Err(Error::NotFound { .. }) => {}
        other => panic!("copying from a key that is only a prefix: {other:?}"),
    }
    assert!(b.s().head(&b.k("pre/copy")).await?.is_none());
    assert_eq!(b.s().get_bytes(&file).await?.unwrap(), b"f", "untouched");
    Ok(())
}

/// Writer `w`'s body in round `round`: a little over 3 MiB (several blocks
/// of the suite's 1 MiB azblob block size), a length and bytes of its own,
/// so a stored mix of two bodies cannot pass for either.
fn writer_body(round: usize, w: usize) -> Vec<u8> {
    let len = (3 << 20) + 4099 * w + 17 * round + 1;
    (0..len)
        .map(|i| ((i / 7 + 13 * w + 5 * round) % 251) as u8 ^ (w as u8))
        .collect()
}

/// The body as a stream of 256 KiB chunks, yielding between chunks so
/// concurrent writers interleave.
fn chunked(data: Vec<u8>) -> ByteStream {
    let data = Bytes::from(data);
    let chunks: Vec<Bytes> = (0..data.len())
        .step_by(256 << 10)
        .map(|i| data.slice(i..(i + (256 << 10)).min(data.len())))
        .collect();
    futures::stream::iter(chunks)
        .then(|c| async move {
            tokio::task::yield_now().await;
            Ok(c)
        })
        .boxed()
}

const WRITERS: usize = 3;
const ROUNDS: usize = 6;

/// Runs `WRITERS` puts of [`writer_body`] to `key` at once, each on its own
/// task, with `condition`; their results in writer order.
async fn race(
    b: &B,
    key: &str,
    round: usize,
    condition: BlobCondition,
) -> Vec<Result<polyrouter::store::blob::BlobMeta>> {
    let tasks: Vec<_> = (0..WRITERS)
        .map(|w| {
            let router = b.router.clone();
            let (key, condition) = (key.to_string(), condition.clone());
            tokio::spawn(async move {
                let opts = PutOptions::new()
                    .meta("writer", w.to_string())
                    .condition(condition);
                router
                    .blobs("s")?
                    .put(&key, chunked(writer_body(round, w)), opts)
                    .await
            })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.expect("writer task"));
    }
    out
}

/// The stored blob is exactly one writer's whole body, with that writer's
/// metadata, and that writer's put returned the etag the blob has now.
/// Returns the owner.
async fn one_whole_body(
    b: &B,
    key: &str,
    round: usize,
    results: &[Result<polyrouter::store::blob::BlobMeta>],
) -> Result<usize> {
    let head = b.s().head(key).await?.expect("a blob after the race");
    let owners: Vec<usize> = results
        .iter()
        .enumerate()
        .filter(|(_, r)| r.as_ref().is_ok_and(|m| m.etag == head.etag))
        .map(|(w, _)| w)
        .collect();
    assert_eq!(
        owners.len(),
        1,
        "round {round}: the stored etag {} is the etag one writer was told; results {results:?}",
        head.etag
    );
    let owner = owners[0];
    let body = b.s().get(key, None).await?.expect("a blob after the race");
    assert_eq!(body.meta.etag, head.etag);
    let bytes = body.bytes().await?;
    let want = writer_body(round, owner);
    assert_eq!(bytes.len(), want.len(), "round {round}: the owner's size");
    assert!(
        bytes == want,
        "round {round}: the stored bytes are writer {owner}'s whole body"
    );
    assert_eq!(head.size, want.len() as u64);
    assert_eq!(
        head.metadata.get("writer").map(String::as_str),
        Some(owner.to_string().as_str()),
        "round {round}: the owner's metadata"
    );
    Ok(owner)
}

async fn blob_concurrent_unconditional_puts_leave_one_whole_body(ctx: Ctx) -> Result<()> {
    let b = B::new(&ctx).await?;
    for round in 0..ROUNDS {
        // A fresh key, and one written before (the race overwrites it).
        for (i, key) in [
            b.k(&format!("race/new{round}")),
            b.k(&format!("race/old{round}")),
        ]
        .iter()
        .enumerate()
        {
            if i == 1 {
                b.s()
                    .put_bytes(key, b"old".to_vec(), PutOptions::new())
                    .await?;
            }
            let results = race(&b, key, round, BlobCondition::None).await;
            for r in &results {
                // A store that stages blocks may refuse a put whose blocks a
                // concurrent commit discarded: a conflict, nothing written.
                match r {
                    Ok(_) | Err(Error::Conflict { .. }) => {}
                    Err(e) => panic!("round {round}: a racing put failed: {e}"),
                }
            }
            assert!(
                results.iter().any(Result::is_ok),
                "round {round}: {results:?}"
            );
            one_whole_body(&b, key, round, &results).await?;
        }
    }
    Ok(())
}

async fn blob_concurrent_conditional_puts_let_one_win(ctx: Ctx) -> Result<()> {
    let b = B::new(&ctx).await?;
    for round in 0..ROUNDS {
        // IfMatch on the etag every writer read: one wins, the rest conflict.
        let key = b.k(&format!("cas/m{round}"));
        let base = b
            .s()
            .put_bytes(&key, b"base".to_vec(), PutOptions::new())
            .await?;
        let results = race(&b, &key, round, BlobCondition::IfMatch(base.etag)).await;
        let winner = one_whole_body(&b, &key, round, &results).await?;
        losers_conflict(round, winner, &results);
        // IfAbsent on a fresh key: likewise.
        let key = b.k(&format!("cas/a{round}"));
        let results = race(&b, &key, round, BlobCondition::IfAbsent).await;
        let winner = one_whole_body(&b, &key, round, &results).await?;
        losers_conflict(round, winner, &results);
    }
    Ok(())
}

/// Every writer but the winner got `Conflict`.
fn losers_conflict(
    round: usize,
    winner: usize,
    results: &[Result<polyrouter::store::blob::BlobMeta>],
) {
    for (w, r) in results.iter().enumerate() {
        if w != winner {
            assert!(
                matches!(r, Err(Error::Conflict { .. })),
                "round {round}: writer {w} lost the race to writer {winner}: {r:?}"
            );
        }
    }
}
