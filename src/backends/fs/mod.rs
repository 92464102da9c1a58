//! `fs`: a blob store on a local directory (tokio fs).
//!
//! ```toml
//! [stores.files]
//! kind = "fs"
//! root = "data/blobs"
//! ```
#![doc = include_str!("docs.md")]

use std::collections::BTreeMap;
use std::io::SeekFrom;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use tokio::sync::RwLock;

use crate::config::StoreSpec;
use crate::query::Filter;
use crate::store::blob::{
    Blob, BlobMeta, BlobStore, ByteRange, ByteStream, CHUNK_SIZE, DEFAULT_CONTENT_TYPE,
    ListOptions, ListPage, PutOptions, check_put, page_keys, records_unsupported,
    signing_unsupported,
};
use crate::store::{EntityInfo, StoreQuery, WriteOp, WriteOutcome};
use crate::{Capabilities, Error, Key, Record, Result, Store};

mod config;
mod keys;
#[cfg(test)]
mod tests;

pub use config::FsConfig;
use keys::{RESERVED, key_path};

/// A temp file not written to for this long belongs to an interrupted put
/// and is removed when a store opens the root.
pub const ABANDONED_AFTER: std::time::Duration = std::time::Duration::from_secs(15 * 60);

pub(crate) fn open(spec: StoreSpec) -> BoxFuture<'static, Result<Arc<dyn Store>>> {
    Box::pin(async move {
        let cfg: FsConfig = spec.parse()?;
        let store = FsStore::open(&spec.name, cfg).await.map_err(|e| match e {
            Error::InvalidInput { message, .. } => spec.error(&["root"], message),
            other => other,
        })?;
        Ok(Arc::new(store) as Arc<dyn Store>)
    })
}

/// A blob store on a local directory.
///
/// Blobs are files under the root at their key's path (`a/b.png` →
/// `ROOT/a/b.png`); metadata lives in sidecars under `ROOT/.polyrouter/meta/`;
/// puts write to `ROOT/.polyrouter/tmp/` and rename into place, so a put
/// that fails half-way leaves nothing visible.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use polyrouter::backends::fs::{FsConfig, FsStore};
/// use polyrouter::store::blob::{BlobStore, PutOptions};
/// let dir = tempfile::tempdir().unwrap();
/// let s = FsStore::open("files", FsConfig::new(dir.path())).await.unwrap();
/// s.put_bytes("a/b.txt", b"hi".to_vec(), PutOptions::new()).await.unwrap();
/// assert_eq!(std::fs::read(dir.path().join("a/b.txt")).unwrap(), b"hi");
/// # });
/// ```
#[derive(Debug)]
pub struct FsStore {
    name: String,
    root: PathBuf,
    caps: Capabilities,
    /// Commits (renames) take it exclusively; reads take it shared while
    /// they open the data file and read its sidecar, so they see a
    /// matching pair.
    lock: RwLock<()>,
}

/// A sidecar: everything about a blob except its bytes.
#[derive(Debug, Serialize, Deserialize)]
struct Sidecar {
    size: u64,
    etag: String,
    /// Always written; `None` only in sidecars of older versions, which
    /// stored no content type when none was given.
    content_type: Option<String>,
    #[serde(default)]
    metadata: BTreeMap<String, String>,
    last_modified: DateTime<Utc>,
}

impl Sidecar {
    fn meta(self, key: &str) -> BlobMeta {
        BlobMeta {
            key: key.into(),
            size: self.size,
            etag: self.etag,
            content_type: self
                .content_type
                .unwrap_or_else(|| DEFAULT_CONTENT_TYPE.to_string()),
            metadata: self.metadata,
            last_modified: self.last_modified,
        }
    }
}

impl FsStore {
    /// Opens (or creates) the root directory and removes temp files that
    /// interrupted puts left.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let dir = tempfile::tempdir().unwrap();
    /// let cfg = polyrouter::backends::fs::FsConfig { create_if_missing: false, ..polyrouter::backends::fs::FsConfig::new(dir.path().join("nope")) };
    /// assert!(polyrouter::backends::fs::FsStore::open("f", cfg).await.is_err());
    /// # });
    /// ```
    pub async fn open(name: &str, cfg: FsConfig) -> Result<Self> {
        let root = cfg.root.clone();
        match tokio::fs::metadata(&root).await {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(Error::invalid_input(
                    name,
                    "",
                    format!("root {} is not a directory", root.display()),
                ));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !cfg.create_if_missing => {
                return Err(Error::invalid_input(
                    name,
                    "",
                    format!(
                        "root directory {} does not exist; create it or set `create_if_missing = true`",
                        root.display()
                    ),
                ));
            }
            Err(_) => {}
        }
        let store = FsStore {
            name: name.into(),
            root,
            caps: Capabilities::blob_only(),
            lock: RwLock::new(()),
        };
        let tmp = store.tmp_dir();
        for dir in [&tmp, &store.meta_root()] {
            tokio::fs::create_dir_all(dir)
                .await
                .map_err(|e| store.io(&format!("cannot create {}", dir.display()), e))?;
        }
        store.remove_abandoned_temp_files().await;
        Ok(store)
    }

    /// Removes temp files nobody wrote to for [`ABANDONED_AFTER`]: what
    /// interrupted puts left (a put in progress keeps touching its file).
    async fn remove_abandoned_temp_files(&self) {
        let Ok(mut entries) = tokio::fs::read_dir(self.tmp_dir()).await else {
            return;
        };
        while let Ok(Some(entry)) = entries.next_entry().await {
            let idle = entry
                .metadata()
                .await
                .ok()
                .and_then(|m| m.modified().ok())
                .and_then(|t| t.elapsed().ok());
            if idle.is_some_and(|d| d >= ABANDONED_AFTER) {
                let _ = tokio::fs::remove_file(entry.path()).await;
            }
        }
    }

    /// The root directory.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let dir = tempfile::tempdir().unwrap();
    /// let s = polyrouter::backends::fs::FsStore::open("f", polyrouter::backends::fs::FsConfig::new(dir.path())).await.unwrap();
    /// assert_eq!(s.root(), dir.path());
    /// # });
    /// ```
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn tmp_dir(&self) -> PathBuf {
        self.root.join(RESERVED).join("tmp")
    }

    fn meta_root(&self) -> PathBuf {
        self.root.join(RESERVED).join("meta")
    }

    fn io(&self, what: &str, e: std::io::Error) -> Error {
        Error::backend(
            &self.name,
            "",
            std::io::Error::new(e.kind(), format!("{what}: {e}")),
        )
    }

    async fn read_sidecar(&self, rel: &Path) -> Result<Option<Sidecar>> {
        match tokio::fs::read(self.meta_root().join(rel)).await {
            Ok(text) => serde_json::from_slice(&text)
                .map(Some)
                .map_err(|e| Error::backend(&self.name, "", e)),
            Err(e) if not_found(&e) => Ok(None),
            Err(e) => Err(self.io("cannot read a metadata sidecar", e)),
        }
    }

    /// The current metadata of a key, if a blob is there (call under the lock).
    async fn current(&self, key: &str, rel: &Path) -> Result<Option<BlobMeta>> {
        match tokio::fs::metadata(self.root.join(rel)).await {
            Ok(m) if m.is_file() => {}
            Ok(_) => return Ok(None),
            Err(e) if not_found(&e) => return Ok(None),
            Err(e) => return Err(self.io("cannot read a blob", e)),
        }
        Ok(self.read_sidecar(rel).await?.map(|s| s.meta(key)))
    }

    /// Writes the body to a temp file; returns its path and size.
    async fn spool(&self, key: &str, mut body: ByteStream) -> Result<(PathBuf, u64)> {
        let tmp = self.tmp_dir().join(uuid::Uuid::new_v4().to_string());
        let mut file = tokio::fs::File::create(&tmp)
            .await
            .map_err(|e| self.io("cannot create a temp file", e))?;
        let mut size = 0u64;
        let result: Result<()> = async {
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|e| {
                    Error::invalid_input(
                        &self.name,
                        "",
                        format!("the body of blob {key:?} failed while reading it: {e}; nothing was stored"),
                    )
                })?;
                size += chunk.len() as u64;
                file.write_all(&chunk)
                    .await
                    .map_err(|e| self.io("cannot write a temp file", e))?;
            }
            file.sync_all()
                .await
                .map_err(|e| self.io("cannot flush a temp file", e))
        }
        .await;
        drop(file);
        if let Err(e) = result {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(e);
        }
        Ok((tmp, size))
    }

    /// Moves a spooled file into place with its sidecar, if `options.condition` holds.
    async fn commit(
        &self,
        key: &str,
        rel: &Path,
        tmp: &Path,
        size: u64,
        options: PutOptions,
    ) -> Result<BlobMeta> {
        let _guard = self.lock.write().await;
        let current = self.current(key, rel).await?;
        let current_etag = current.as_ref().map(|m| m.etag.as_str());
        if !options.condition.holds(current_etag) {
            return Err(options.condition.conflict(&self.name, key, current_etag));
        }
        let data_path = self.root.join(rel);
        self.check_no_clash(key, rel).await?;
        // A fresh etag per write, never derived from the content: the same
        // bytes under other metadata must not match a stale `IfMatch`.
        let meta = BlobMeta {
            key: key.into(),
            size,
            etag: format!("\"{}\"", uuid::Uuid::new_v4().simple()),
            content_type: options.stored_content_type().to_string(),
            metadata: options.metadata,
            last_modified: Utc::now(),
        };
        let sidecar = Sidecar {
            size,
            etag: meta.etag.clone(),
            content_type: Some(meta.content_type.clone()),
            metadata: meta.metadata.clone(),
            last_modified: meta.last_modified,
        };
        let meta_path = self.meta_root().join(rel);
        let meta_tmp = self
            .tmp_dir()
            .join(format!("{}.meta", uuid::Uuid::new_v4()));
        let text = serde_json::to_vec(&sidecar).map_err(|e| Error::backend(&self.name, "", e))?;
        tokio::fs::write(&meta_tmp, text)
            .await
            .map_err(|e| self.io("cannot write a metadata sidecar", e))?;
        for path in [&data_path, &meta_path] {
            if let Some(parent) = path.parent() {
                tokio::fs::create_dir_all(parent)
                    .await
                    .map_err(|e| self.io("cannot create a directory", e))?;
            }
        }
        // The sidecar first, the data last: the blob becomes visible (and
        // replaces the old one) only with its data's rename.
        tokio::fs::rename(&meta_tmp, &meta_path)
            .await
            .map_err(|e| self.io("cannot move a metadata sidecar into place", e))?;
        tokio::fs::rename(tmp, &data_path)
            .await
            .map_err(|e| self.io("cannot move a blob into place", e))?;
        Ok(meta)
    }

    /// A key whose path is a directory (`a` when `a/b` exists) or runs
    /// through a file (`a/b` when `a` exists) cannot be stored on a file system.
    async fn check_no_clash(&self, key: &str, rel: &Path) -> Result<()> {
        let clash = |other: String| {
            Err(Error::invalid_input(
                &self.name,
                "",
                format!(
                    "blob key {key:?} clashes with {other}: an `fs` store keeps `/` as directories, so a key cannot be both a blob and a prefix of other blobs; use another key"
                ),
            ))
        };
        if tokio::fs::metadata(self.root.join(rel))
            .await
            .is_ok_and(|m| m.is_dir())
        {
            return clash(format!("the blobs under `{key}/`"));
        }
        let mut ancestor = rel.parent();
        while let Some(a) = ancestor.filter(|a| !a.as_os_str().is_empty()) {
            if tokio::fs::metadata(self.root.join(a))
                .await
                .is_ok_and(|m| m.is_file())
            {
                return clash(format!("the blob `{}`", a.display()));
            }
            ancestor = a.parent();
        }
        Ok(())
    }

    /// Removes empty directories from `rel`'s parent up to (not including) `base`.
    async fn prune(base: &Path, rel: &Path) {
        let mut dir = rel.parent();
        while let Some(d) = dir.filter(|d| !d.as_os_str().is_empty()) {
            if tokio::fs::remove_dir(base.join(d)).await.is_err() {
                break;
            }
            dir = d.parent();
        }
    }

    /// Every key under the directory the prefix points into, unsorted.
    async fn keys_under(&self, prefix: &str) -> Result<Vec<String>> {
        // Start at the deepest directory the prefix names completely.
        let start = match prefix.rfind('/') {
            Some(i) => &prefix[..i],
            None => "",
        };
        let mut out = Vec::new();
        let mut stack = vec![start.to_string()];
        while let Some(dir) = stack.pop() {
            let path = if dir.is_empty() {
                self.root.clone()
            } else {
                match key_path(&self.name, &dir) {
                    Ok(rel) => self.root.join(rel),
                    Err(_) => continue,
                }
            };
            let mut entries = match tokio::fs::read_dir(&path).await {
                Ok(r) => r,
                Err(e) if not_found(&e) => {
                    continue;
                }
                Err(e) => return Err(self.io("cannot list a directory", e)),
            };
            while let Some(entry) = entries
                .next_entry()
                .await
                .map_err(|e| self.io("cannot list a directory", e))?
            {
                let Ok(name) = entry.file_name().into_string() else {
                    continue; // not a key polyrouter wrote
                };
                if dir.is_empty() && name == RESERVED {
                    continue;
                }
                let key = if dir.is_empty() {
                    name
                } else {
                    format!("{dir}/{name}")
                };
                let ty = entry
                    .file_type()
                    .await
                    .map_err(|e| self.io("cannot list a directory", e))?;
                if ty.is_dir() {
                    stack.push(key);
                } else if ty.is_file() && key.starts_with(prefix) {
                    out.push(key);
                }
            }
        }
        Ok(out)
    }
}

/// Not a blob there: missing, a path through a file, or a directory (a
/// key that is only a prefix of other keys).
fn not_found(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::NotFound
            | std::io::ErrorKind::NotADirectory
            | std::io::ErrorKind::IsADirectory
    )
}

#[async_trait]
impl BlobStore for FsStore {
    async fn signed_url(&self, _key: &str, _expires_in: std::time::Duration) -> Result<String> {
        Err(signing_unsupported(
            &self.name,
            "kind `fs` is a local directory with no HTTP endpoint; serve the file through your application, or use an `azblob` store",
        ))
    }

    async fn put(&self, key: &str, body: ByteStream, options: PutOptions) -> Result<BlobMeta> {
        let rel = key_path(&self.name, key)?;
        check_put(&self.name, key, &options)?;
        let (tmp, size) = self.spool(key, body).await?;
        let result = self.commit(key, &rel, &tmp, size, options).await;
        if result.is_err() {
            let _ = tokio::fs::remove_file(&tmp).await;
        }
        result
    }

    async fn get(&self, key: &str, range: Option<ByteRange>) -> Result<Option<Blob>> {
        let rel = key_path(&self.name, key)?;
        let (mut file, meta) = {
            let _guard = self.lock.read().await;
            let file = match tokio::fs::File::open(self.root.join(&rel)).await {
                Ok(f) => f,
                Err(e) if not_found(&e) => {
                    return Ok(None);
                }
                Err(e) => return Err(self.io("cannot open a blob", e)),
            };
            let meta = match self.read_sidecar(&rel).await? {
                Some(s) => s.meta(key),
                None => return Ok(None),
            };
            (file, meta)
        };
        if file.metadata().await.is_ok_and(|m| m.is_dir()) {
            return Ok(None);
        }
        let (start, end) = range
            .unwrap_or(ByteRange::new(0, None))
            .resolve(meta.size)
            .map_err(|m| Error::invalid_input(&self.name, "", format!("{m}; key {key:?}")))?;
        if start > 0 {
            file.seek(SeekFrom::Start(start))
                .await
                .map_err(|e| self.io("cannot seek in a blob", e))?;
        }
        let name = self.name.clone();
        let body = futures::stream::try_unfold(
            (file, end - start, name),
            |(mut file, left, name)| async move {
                if left == 0 {
                    return Ok(None);
                }
                let want = left.min(CHUNK_SIZE as u64) as usize;
                let mut buf = vec![0u8; want];
                let mut got = 0;
                while got < want {
                    let n = file.read(&mut buf[got..]).await.map_err(|e| {
                        Error::backend(
                            &name,
                            "",
                            std::io::Error::new(e.kind(), format!("cannot read a blob: {e}")),
                        )
                    })?;
                    if n == 0 {
                        return Err(Error::backend(
                            &name,
                            "",
                            std::io::Error::other(
                                "the blob file is shorter than its metadata says",
                            ),
                        ));
                    }
                    got += n;
                }
                Ok(Some((Bytes::from(buf), (file, left - want as u64, name))))
            },
        );
        Ok(Some(Blob {
            meta,
            body: body.boxed(),
        }))
    }

    async fn head(&self, key: &str) -> Result<Option<BlobMeta>> {
        let rel = key_path(&self.name, key)?;
        let _guard = self.lock.read().await;
        self.current(key, &rel).await
    }

    async fn list(&self, options: &ListOptions) -> Result<ListPage> {
        let mut keys = self.keys_under(&options.prefix).await?;
        keys.sort_unstable();
        let (entries, continuation) = page_keys(keys.iter().map(String::as_str), options);
        let mut page = ListPage {
            blobs: Vec::new(),
            prefixes: Vec::new(),
            continuation,
        };
        let _guard = self.lock.read().await;
        for e in entries {
            match e {
                Ok(k) => {
                    let rel = key_path(&self.name, &k)?;
                    if let Some(meta) = self.current(&k, &rel).await? {
                        page.blobs.push(meta);
                    }
                }
                Err(p) => page.prefixes.push(p),
            }
        }
        Ok(page)
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        let rel = key_path(&self.name, key)?;
        let _guard = self.lock.write().await;
        let existed = match tokio::fs::remove_file(self.root.join(&rel)).await {
            Ok(()) => true,
            Err(e) if not_found(&e) => false,
            Err(e) => return Err(self.io("cannot delete a blob", e)),
        };
        match tokio::fs::remove_file(self.meta_root().join(&rel)).await {
            Ok(()) => {}
            Err(e) if not_found(&e) => {}
            Err(e) => return Err(self.io("cannot delete a metadata sidecar", e)),
        }
        if existed {
            Self::prune(&self.root, &rel).await;
            Self::prune(&self.meta_root(), &rel).await;
        }
        Ok(existed)
    }

    async fn copy(&self, from: &str, to: &str) -> Result<BlobMeta> {
        key_path(&self.name, to)?;
        let Some(src) = BlobStore::get(self, from, None).await? else {
            return Err(Error::NotFound {
                store: self.name.clone(),
                entity: String::new(),
                key: from.into(),
            });
        };
        let options = PutOptions {
            content_type: Some(src.meta.content_type.clone()),
            metadata: src.meta.metadata.clone(),
            ..PutOptions::default()
        };
        let body = src.body.map(|c| c.map_err(std::io::Error::other)).boxed();
        self.put(to, body, options).await
    }
}

#[async_trait]
impl Store for FsStore {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "fs"
    }

    fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    fn location(&self) -> String {
        self.root.display().to_string()
    }

    async fn ensure_entity(&self, entity: &EntityInfo) -> Result<()> {
        Err(records_unsupported(&self.name, entity.name()))
    }

    async fn get(&self, entity: &EntityInfo, _key: &Key) -> Result<Option<Record>> {
        Err(records_unsupported(&self.name, entity.name()))
    }

    async fn get_many(&self, entity: &EntityInfo, _keys: &[Key]) -> Result<Vec<Option<Record>>> {
        Err(records_unsupported(&self.name, entity.name()))
    }

    async fn write(
        &self,
        entity: &EntityInfo,
        _ops: Vec<WriteOp>,
        _atomic: bool,
    ) -> Result<Vec<WriteOutcome>> {
        Err(records_unsupported(&self.name, entity.name()))
    }

    async fn query(&self, entity: &EntityInfo, _query: &StoreQuery) -> Result<Vec<Record>> {
        Err(records_unsupported(&self.name, entity.name()))
    }

    async fn count(&self, entity: &EntityInfo, _filter: Option<&Filter>) -> Result<u64> {
        Err(records_unsupported(&self.name, entity.name()))
    }

    async fn ping(&self) -> Result<()> {
        tokio::fs::metadata(self.tmp_dir())
            .await
            .map(|_| ())
            .map_err(|e| {
                Error::unavailable(
                    &self.name,
                    "",
                    format!("root {} is not usable: {e}", self.root.display()),
                )
            })
    }

    fn as_blob(&self) -> Option<&dyn BlobStore> {
        Some(self)
    }
}
