//! [`BlobStore`] for the memory store: blobs as shared byte buffers.
//!
//! A put collects its body before it swaps it in, so a body that fails
//! half-way leaves the previous blob untouched. (Bounded memory is the
//! point of the `fs` and `azblob` stores; here the blob *is* memory.)
//! There is no URL to sign: `signed_url` is `Error::Unsupported`.

use std::collections::BTreeMap;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use chrono::Utc;
use futures::StreamExt;
use parking_lot::RwLock;

use super::MemoryStore;
use crate::store::blob::{
    Blob, BlobMeta, BlobStore, ByteRange, ByteStream, CHUNK_SIZE, ListOptions, ListPage,
    PutOptions, check_key, check_put, page_keys, signing_unsupported,
};
use crate::{Error, Result};

#[derive(Debug, Clone)]
struct Entry {
    meta: BlobMeta,
    data: Bytes,
}

/// The blobs of one memory store.
#[derive(Debug, Default)]
pub(super) struct Blobs {
    map: RwLock<BTreeMap<String, Entry>>,
    /// Etags come from a counter: every write gets a new one.
    next_etag: parking_lot::Mutex<u64>,
}

impl Blobs {
    fn etag(&self) -> String {
        let mut n = self.next_etag.lock();
        *n += 1;
        format!("\"m{}\"", *n)
    }
}

#[async_trait]
impl BlobStore for MemoryStore {
    async fn signed_url(&self, _key: &str, _expires_in: std::time::Duration) -> Result<String> {
        Err(signing_unsupported(
            &self.name,
            "kind `memory` holds blobs in this process and has no URL to sign; use an `azblob` store",
        ))
    }

    async fn put(&self, key: &str, mut body: ByteStream, options: PutOptions) -> Result<BlobMeta> {
        check_put(&self.name, key, &options)?;
        let mut buf = BytesMut::new();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| {
                Error::invalid_input(
                    &self.name,
                    "",
                    format!(
                        "the body of blob {key:?} failed while reading it: {e}; nothing was stored"
                    ),
                )
            })?;
            buf.extend_from_slice(&chunk);
        }
        let mut map = self.blobs.map.write();
        let current = map.get(key).map(|e| e.meta.etag.as_str());
        if !options.condition.holds(current) {
            return Err(options.condition.conflict(&self.name, key, current));
        }
        let meta = BlobMeta {
            key: key.into(),
            size: buf.len() as u64,
            etag: self.blobs.etag(),
            content_type: options.stored_content_type().to_string(),
            metadata: options.metadata,
            last_modified: Utc::now(),
        };
        map.insert(
            key.into(),
            Entry {
                meta: meta.clone(),
                data: buf.freeze(),
            },
        );
        Ok(meta)
    }

    async fn get(&self, key: &str, range: Option<ByteRange>) -> Result<Option<Blob>> {
        check_key(&self.name, key)?;
        let Some(entry) = self.blobs.map.read().get(key).cloned() else {
            return Ok(None);
        };
        let (start, end) = range
            .unwrap_or(ByteRange::new(0, None))
            .resolve(entry.meta.size)
            .map_err(|m| Error::invalid_input(&self.name, "", format!("{m}; key {key:?}")))?;
        let data = entry.data.slice(start as usize..end as usize);
        let chunks: Vec<Result<Bytes>> = (0..data.len())
            .step_by(CHUNK_SIZE)
            .map(|i| Ok(data.slice(i..(i + CHUNK_SIZE).min(data.len()))))
            .collect();
        Ok(Some(Blob {
            meta: entry.meta,
            body: futures::stream::iter(chunks).boxed(),
        }))
    }

    async fn head(&self, key: &str) -> Result<Option<BlobMeta>> {
        check_key(&self.name, key)?;
        Ok(self.blobs.map.read().get(key).map(|e| e.meta.clone()))
    }

    async fn list(&self, options: &ListOptions) -> Result<ListPage> {
        let map = self.blobs.map.read();
        let (entries, continuation) = page_keys(map.keys().map(String::as_str), options);
        let mut page = ListPage {
            blobs: Vec::new(),
            prefixes: Vec::new(),
            continuation,
        };
        for e in entries {
            match e {
                Ok(k) => page.blobs.push(map[&k].meta.clone()),
                Err(p) => page.prefixes.push(p),
            }
        }
        Ok(page)
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        check_key(&self.name, key)?;
        Ok(self.blobs.map.write().remove(key).is_some())
    }

    async fn copy(&self, from: &str, to: &str) -> Result<BlobMeta> {
        check_key(&self.name, from)?;
        check_key(&self.name, to)?;
        let mut map = self.blobs.map.write();
        let Some(src) = map.get(from).cloned() else {
            return Err(Error::NotFound {
                store: self.name.clone(),
                entity: String::new(),
                key: from.into(),
            });
        };
        let meta = BlobMeta {
            key: to.into(),
            etag: self.blobs.etag(),
            last_modified: Utc::now(),
            ..src.meta
        };
        map.insert(
            to.into(),
            Entry {
                meta: meta.clone(),
                data: src.data,
            },
        );
        Ok(meta)
    }
}
