//! Blob put/get of 1 MiB and 64 MiB on `fs` (a temp dir) and `azblob`
//! (Azurite on `http://127.0.0.1:10000/devstoreaccount1`, or
//! `POLYROUTER_BENCH_AZBLOB_URL`), each through `BlobStore` and through the
//! raw crate in the same run:
//!
//! - `fs/{put,get}_{1MiB,64MiB}`: `FsStore` (temp file, fsync, sidecar,
//!   renames; get streams 1 MiB chunks);
//! - `fs/raw_{put,get}_…`: `tokio::fs::write` of the bytes / `tokio::fs::read`;
//! - `azblob/{put,get}_…`: `AzBlobStore` (one Put Blob up to 4 MiB, else
//!   4 MiB blocks, 4 in flight; get = properties + 4 MiB ranged GETs pinned
//!   by etag, two in flight);
//! - `azblob/raw_{put,get}_…`: the `azure_storage_blob` SDK directly, on the
//!   store's own client (same credentials and HTTP client): the SDK's managed
//!   `upload` of the whole body and `download` collected in memory.
//!
//! ```text
//! cargo bench --features fs,azblob --bench blob -- --warm-up-time 1 --measurement-time 3
//! ```
//!
//! The run's container (`pr-bench-<pid>`) is deleted at the end; the temp dir too.

use std::hint::black_box;
use std::time::Duration;

use azure_core::http::{NoFormat, RequestContent};
use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use futures::StreamExt;
use polyrouter::backends::azblob::{AzBlobConfig, AzBlobStore, DEV_ACCOUNT};
use polyrouter::backends::fs::{FsConfig, FsStore};
use polyrouter::store::blob::{BlobStore, ByteStream, PutOptions};

const SIZES: [(usize, &str); 2] = [(1 << 20, "1MiB"), (64 << 20, "64MiB")];

fn data(size: usize) -> Bytes {
    Bytes::from((0..size).map(|i| (i % 251) as u8).collect::<Vec<u8>>())
}

/// The body as 1 MiB chunks (cheap clones of one buffer).
fn body(d: &Bytes) -> ByteStream {
    let chunks: Vec<std::io::Result<Bytes>> = (0..d.len())
        .step_by(1 << 20)
        .map(|i| Ok(d.slice(i..(i + (1 << 20)).min(d.len()))))
        .collect();
    futures::stream::iter(chunks).boxed()
}

async fn drain(store: &dyn BlobStore, key: &str) -> usize {
    let mut b = store.get(key, None).await.unwrap().unwrap().body;
    let mut n = 0;
    while let Some(c) = b.next().await {
        n += c.unwrap().len();
    }
    n
}

fn endpoint() -> String {
    std::env::var("POLYROUTER_BENCH_AZBLOB_URL")
        .unwrap_or_else(|_| format!("http://127.0.0.1:10000/{DEV_ACCOUNT}"))
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let fs = rt
        .block_on(FsStore::open("fs", FsConfig::new(dir.path().join("store"))))
        .unwrap();
    let container = format!("pr-bench-{}", std::process::id());
    let az = rt
        .block_on(AzBlobStore::open(
            "az",
            AzBlobConfig::dev(&container, &endpoint()),
        ))
        .unwrap_or_else(|e| panic!("azblob bench needs Azurite (scripts/emulators/start): {e}"));
    let raw = az.container_client();

    let mut g = c.benchmark_group("fs");
    g.sample_size(10);
    for (size, label) in SIZES {
        let d = data(size);
        g.throughput(Throughput::Bytes(size as u64));
        let key = format!("k{label}");
        g.bench_function(format!("put_{label}"), |b| {
            b.to_async(&rt)
                .iter(|| async { fs.put(&key, body(&d), PutOptions::new()).await.unwrap() })
        });
        g.bench_function(format!("get_{label}"), |b| {
            b.to_async(&rt)
                .iter(|| async { black_box(drain(&fs, &key).await) })
        });
        let raw_path = dir.path().join(format!("raw{label}"));
        g.bench_function(format!("raw_put_{label}"), |b| {
            b.to_async(&rt)
                .iter(|| async { tokio::fs::write(&raw_path, &d).await.unwrap() })
        });
        g.bench_function(format!("raw_get_{label}"), |b| {
            b.to_async(&rt)
                .iter(|| async { black_box(tokio::fs::read(&raw_path).await.unwrap().len()) })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("azblob");
    g.sample_size(10);
    for (size, label) in SIZES {
        let d = data(size);
        g.throughput(Throughput::Bytes(size as u64));
        let key = format!("k{label}");
        g.bench_function(format!("put_{label}"), |b| {
            b.to_async(&rt)
                .iter(|| async { az.put(&key, body(&d), PutOptions::new()).await.unwrap() })
        });
        g.bench_function(format!("get_{label}"), |b| {
            b.to_async(&rt)
                .iter(|| async { black_box(drain(&az, &key).await) })
        });
        let raw_key = format!("raw{label}");
        g.bench_function(format!("raw_put_{label}"), |b| {
            b.to_async(&rt).iter(|| async {
                let content: RequestContent<Bytes, NoFormat> = d.clone().into();
                raw.blob_client(&raw_key)
                    .block_blob_client()
                    .upload(content, None)
                    .await
                    .unwrap();
            })
        });
        g.bench_function(format!("raw_get_{label}"), |b| {
            b.to_async(&rt).iter(|| async {
                let mut body = raw.blob_client(&raw_key).download(None).await.unwrap().body;
                let mut n = 0;
                while let Some(chunk) = body.next().await {
                    n += chunk.unwrap().len();
                }
                black_box(n)
            })
        });
    }
    g.finish();
    rt.block_on(az.delete_container()).unwrap();
}

criterion_group! {
    name = blob;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = benches
}
criterion_main!(blob);
