//! Blob stores: streamed objects addressed by a string key.
//!
//! A store that holds blobs implements [`BlobStore`] and returns it from
//! [`Store::as_blob`](crate::Store::as_blob); the router hands it out with
//! [`Router::blobs`](crate::Router::blobs). Bodies travel as streams of
//! [`Bytes`] chunks, so a 1 GiB blob never sits in memory whole.
//!
//! ## One contract for every blob store
//!
//! Every store (`memory`, `fs`, `azblob`) keeps these rules, and refuses
//! with [`Error::InvalidInput`] — before any I/O — what it could not keep:
//!
//! - **Etags** are quoted strings (`"…"`), the same in what `put`, `head`,
//!   `get`, `list` and `copy` return, and **new on every write**, even one
//!   that stores the same bytes (so a stale [`BlobCondition::IfMatch`] fails
//!   after any change, metadata included). `IfMatch` takes an etag exactly
//!   as a store returned it; anything else (`*` included: there is no
//!   wildcard) is `InvalidInput` ([`check_condition`]).
//! - **Content type** comes back exactly as given; a put without one stores
//!   [`DEFAULT_CONTENT_TYPE`] (`application/octet-stream`), so
//!   [`BlobMeta::content_type`] is always set. A given one must be
//!   printable ASCII without leading or trailing spaces
//!   ([`check_content_type`]).
//! - **Metadata names** are lowercase ASCII identifiers (`[a-z_][a-z0-9_]*`:
//!   HTTP stores lowercase header names); **values** are non-empty
//!   printable ASCII without leading or trailing spaces (HTTP trims them);
//!   names and values together are at most [`MAX_METADATA_BYTES`]
//!   ([`check_metadata`]).
//! - **Concurrent writers** to one key: the stored blob is always exactly
//!   one writer's whole body, and it is the body of the writer whose `put`
//!   returned the etag `head` shows. Of racing `IfMatch`/`IfAbsent` puts at
//!   most one succeeds; the others get [`Error::Conflict`]. A store that
//!   stages a big body in parts (`azblob`) may also answer an
//!   *unconditional* put with `Conflict` when another put to the key
//!   committed while it staged (nothing of it is stored; put again).
//! - **A key that is only a prefix** of other keys (`a` when only `a/b`
//!   exists) is absent: `get`/`head` give `None`, `delete` gives
//!   `Ok(false)`, `copy` from it is `NotFound`.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use polyrouter::store::blob::{BlobStore, PutOptions};
//! let store = polyrouter::backends::memory::MemoryStore::new("images");
//! let blobs: &dyn BlobStore = &store;
//! let meta = blobs.put_bytes("cats/1.png", b"png".to_vec(), PutOptions::new().content_type("image/png")).await.unwrap();
//! assert_eq!(meta.size, 3);
//! assert_eq!(blobs.get_bytes("cats/1.png").await.unwrap().unwrap(), b"png");
//! # });
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::stream::{BoxStream, StreamExt};

use crate::{Error, Result};

/// A body to upload: chunks of bytes; an `Err` chunk aborts the put and
/// nothing becomes visible.
pub type ByteStream = BoxStream<'static, std::io::Result<Bytes>>;

/// A body being downloaded.
pub type BlobBody = BoxStream<'static, Result<Bytes>>;

/// The chunk size backends read and write in (1 MiB).
pub const CHUNK_SIZE: usize = 1 << 20;

/// The content type of a blob put without one, on every store (what HTTP
/// object stores answer for bytes of unknown type).
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use polyrouter::store::blob::{BlobStore, PutOptions, DEFAULT_CONTENT_TYPE};
/// let s = polyrouter::backends::memory::MemoryStore::new("b");
/// let m = BlobStore::put_bytes(&s, "k", b"x".to_vec(), PutOptions::new()).await.unwrap();
/// assert_eq!(m.content_type, DEFAULT_CONTENT_TYPE);
/// # });
/// ```
pub const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";

/// The most bytes of user metadata (names plus values) one blob may carry:
/// 8 KiB, Azure Blob Storage's limit, kept by every store.
///
/// ```
/// assert_eq!(polyrouter::store::blob::MAX_METADATA_BYTES, 8192);
/// ```
pub const MAX_METADATA_BYTES: usize = 8 * 1024;

/// Turns bytes in memory into a [`ByteStream`].
///
/// ```
/// let s = polyrouter::store::blob::stream_of(b"abc".to_vec());
/// # let _ = s;
/// ```
pub fn stream_of(data: impl Into<Bytes>) -> ByteStream {
    let data: Bytes = data.into();
    futures::stream::once(async move { Ok(data) }).boxed()
}

/// A condition on the blob's current state; a failed one is
/// [`Error::Conflict`] and writes nothing.
///
/// ```
/// use polyrouter::store::blob::BlobCondition;
/// assert_eq!(BlobCondition::IfMatch("\"e1\"".into()).to_string(), "if-match \"e1\"");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum BlobCondition {
    /// Unconditional.
    #[default]
    None,
    /// Only if no blob has the key.
    IfAbsent,
    /// Only if the blob exists with this etag.
    IfMatch(String),
}

impl fmt::Display for BlobCondition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BlobCondition::None => f.write_str("none"),
            BlobCondition::IfAbsent => f.write_str("if-absent"),
            BlobCondition::IfMatch(e) => write!(f, "if-match {e}"),
        }
    }
}

impl BlobCondition {
    /// Whether the condition holds given the current etag (`None`: absent).
    ///
    /// ```
    /// use polyrouter::store::blob::BlobCondition;
    /// assert!(BlobCondition::IfAbsent.holds(None));
    /// assert!(!BlobCondition::IfMatch("a".into()).holds(Some("b")));
    /// ```
    pub fn holds(&self, current: Option<&str>) -> bool {
        match self {
            BlobCondition::None => true,
            BlobCondition::IfAbsent => current.is_none(),
            BlobCondition::IfMatch(e) => current == Some(e.as_str()),
        }
    }

    /// The [`Error::Conflict`] for this condition failing on `key`, whose
    /// current etag is `current` (`None`: absent).
    ///
    /// ```
    /// use polyrouter::store::blob::BlobCondition;
    /// let e = BlobCondition::IfAbsent.conflict("img", "a.png", Some("\"e1\""));
    /// assert!(e.to_string().contains("the current version is etag \"e1\""), "{e}");
    /// ```
    pub fn conflict(&self, store: &str, key: &str, current: Option<&str>) -> Error {
        let expected = match self {
            BlobCondition::None => crate::Precondition::None,
            BlobCondition::IfAbsent => crate::Precondition::Absent,
            BlobCondition::IfMatch(_) => crate::Precondition::Exists,
        };
        Error::Conflict {
            store: store.into(),
            entity: String::new(),
            key: format!("{key} (blob {self})"),
            expected,
            actual: None,
            etag: current.map(Box::from),
        }
    }
}

/// How to store a blob.
///
/// ```
/// use polyrouter::store::blob::{BlobCondition, PutOptions};
/// let o = PutOptions::new().content_type("text/plain").meta("owner", "ann").condition(BlobCondition::IfAbsent);
/// assert_eq!(o.metadata["owner"], "ann");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PutOptions {
    /// The MIME type, returned by `head` and `get` exactly as given;
    /// `None` stores [`DEFAULT_CONTENT_TYPE`].
    pub content_type: Option<String>,
    /// User metadata: lowercase ASCII identifiers as names, non-empty
    /// printable ASCII values (see [`check_metadata`]).
    pub metadata: BTreeMap<String, String>,
    /// Condition on the current blob.
    pub condition: BlobCondition,
}

impl PutOptions {
    /// Defaults: no content type, no metadata, unconditional.
    ///
    /// ```
    /// assert_eq!(polyrouter::store::blob::PutOptions::new().content_type, None);
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the content type.
    ///
    /// ```
    /// let o = polyrouter::store::blob::PutOptions::new().content_type("image/png");
    /// assert_eq!(o.content_type.as_deref(), Some("image/png"));
    /// ```
    pub fn content_type(mut self, ct: impl Into<String>) -> Self {
        self.content_type = Some(ct.into());
        self
    }

    /// Adds one metadata entry.
    ///
    /// ```
    /// let o = polyrouter::store::blob::PutOptions::new().meta("a", "1");
    /// assert_eq!(o.metadata.len(), 1);
    /// ```
    pub fn meta(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.insert(name.into(), value.into());
        self
    }

    /// Sets the condition.
    ///
    /// ```
    /// use polyrouter::store::blob::{BlobCondition, PutOptions};
    /// assert_eq!(PutOptions::new().condition(BlobCondition::IfAbsent).condition, BlobCondition::IfAbsent);
    /// ```
    pub fn condition(mut self, c: BlobCondition) -> Self {
        self.condition = c;
        self
    }

    /// The content type the blob is stored with: the one given, else
    /// [`DEFAULT_CONTENT_TYPE`].
    ///
    /// ```
    /// use polyrouter::store::blob::PutOptions;
    /// assert_eq!(PutOptions::new().stored_content_type(), "application/octet-stream");
    /// assert_eq!(PutOptions::new().content_type("text/csv").stored_content_type(), "text/csv");
    /// ```
    pub fn stored_content_type(&self) -> &str {
        self.content_type.as_deref().unwrap_or(DEFAULT_CONTENT_TYPE)
    }
}

/// What `head` tells about a blob.
///
/// ```
/// let m = polyrouter::store::blob::BlobMeta::new("a", 3, "\"e\"");
/// assert_eq!(m.size, 3);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobMeta {
    /// The key.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// Opaque version tag in quotes (`"…"`); new on every write.
    pub etag: String,
    /// The MIME type given at put, or [`DEFAULT_CONTENT_TYPE`].
    pub content_type: String,
    /// User metadata.
    pub metadata: BTreeMap<String, String>,
    /// Time of the last write.
    pub last_modified: DateTime<Utc>,
}

impl BlobMeta {
    /// Metadata with the default content type, no user metadata, modified now.
    ///
    /// ```
    /// let m = polyrouter::store::blob::BlobMeta::new("k", 0, "\"e\"");
    /// assert_eq!((m.key.as_str(), m.content_type.as_str()), ("k", "application/octet-stream"));
    /// ```
    pub fn new(key: &str, size: u64, etag: &str) -> Self {
        BlobMeta {
            key: key.into(),
            size,
            etag: etag.into(),
            content_type: DEFAULT_CONTENT_TYPE.into(),
            metadata: BTreeMap::new(),
            last_modified: Utc::now(),
        }
    }
}

/// A byte range: from `start`, up to `end` (exclusive) or the end of the blob.
///
/// ```
/// use polyrouter::store::blob::ByteRange;
/// assert_eq!(ByteRange::new(2, Some(5)).resolve(10).unwrap(), (2, 5));
/// assert_eq!(ByteRange::new(4, None).resolve(10).unwrap(), (4, 10));
/// assert!(ByteRange::new(11, None).resolve(10).is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    /// First byte.
    pub start: u64,
    /// One past the last byte; `None`: to the end.
    pub end: Option<u64>,
}

impl ByteRange {
    /// A range.
    ///
    /// ```
    /// assert_eq!(polyrouter::store::blob::ByteRange::new(0, Some(1)).end, Some(1));
    /// ```
    pub fn new(start: u64, end: Option<u64>) -> Self {
        ByteRange { start, end }
    }

    /// The concrete `(start, end)` within a blob of `size` bytes; an end past
    /// the size is clamped; a start past the size or after the end is an error
    /// message.
    ///
    /// ```
    /// assert_eq!(polyrouter::store::blob::ByteRange::new(0, Some(99)).resolve(3).unwrap(), (0, 3));
    /// ```
    pub fn resolve(&self, size: u64) -> std::result::Result<(u64, u64), String> {
        let end = self.end.unwrap_or(size).min(size);
        if self.start > size || self.end.is_some_and(|e| e < self.start) {
            return Err(format!(
                "byte range {}..{} is outside the blob of {size} bytes",
                self.start,
                self.end.map(|e| e.to_string()).unwrap_or_default()
            ));
        }
        Ok((self.start, end))
    }
}

/// A blob being read: its metadata and its body (the range asked for).
pub struct Blob {
    /// The blob's metadata (`size` is the whole blob's size).
    pub meta: BlobMeta,
    /// The bytes, streamed.
    pub body: BlobBody,
}

impl fmt::Debug for Blob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Blob")
            .field("meta", &self.meta)
            .finish_non_exhaustive()
    }
}

impl Blob {
    /// Collects the body into memory.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use polyrouter::store::blob::{Blob, BlobMeta};
    /// let b = Blob { meta: BlobMeta::new("k", 2, "e"), body: Box::pin(futures::stream::iter(vec![Ok(bytes::Bytes::from_static(b"hi"))])) };
    /// assert_eq!(b.bytes().await.unwrap(), b"hi");
    /// # });
    /// ```
    pub async fn bytes(mut self) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        while let Some(chunk) = self.body.next().await {
            out.extend_from_slice(&chunk?);
        }
        Ok(out)
    }
}

/// What to list.
///
/// ```
/// let o = polyrouter::store::blob::ListOptions::prefix("cats/").delimiter("/").limit(10);
/// assert_eq!(o.limit, Some(10));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListOptions {
    /// Only keys starting with this.
    pub prefix: String,
    /// Roll keys up at the first delimiter after the prefix into
    /// [`ListPage::prefixes`], like directories.
    pub delimiter: Option<String>,
    /// At most this many entries (blobs plus prefixes) per page; the store's
    /// default (at most 5000) when `None`.
    pub limit: Option<usize>,
    /// The continuation of the previous page.
    pub continuation: Option<String>,
}

impl ListOptions {
    /// Keys under a prefix.
    ///
    /// ```
    /// assert_eq!(polyrouter::store::blob::ListOptions::prefix("a/").prefix, "a/");
    /// ```
    pub fn prefix(prefix: impl Into<String>) -> Self {
        ListOptions {
            prefix: prefix.into(),
            ..Default::default()
        }
    }

    /// Sets the delimiter.
    ///
    /// ```
    /// assert!(polyrouter::store::blob::ListOptions::prefix("").delimiter("/").delimiter.is_some());
    /// ```
    pub fn delimiter(mut self, d: impl Into<String>) -> Self {
        self.delimiter = Some(d.into());
        self
    }

    /// Sets the page size.
    ///
    /// ```
    /// assert_eq!(polyrouter::store::blob::ListOptions::prefix("").limit(2).limit, Some(2));
    /// ```
    pub fn limit(mut self, n: usize) -> Self {
        self.limit = Some(n);
        self
    }

    /// The options for the page after `page`, or `None` when it was the last.
    ///
    /// ```
    /// use polyrouter::store::blob::{ListOptions, ListPage};
    /// let page = ListPage { blobs: vec![], prefixes: vec![], continuation: None };
    /// assert!(ListOptions::prefix("").next(&page).is_none());
    /// ```
    pub fn next(&self, page: &ListPage) -> Option<ListOptions> {
        page.continuation.as_ref().map(|c| ListOptions {
            continuation: Some(c.clone()),
            ..self.clone()
        })
    }
}

/// One page of a listing, in key order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListPage {
    /// Blobs on this page.
    pub blobs: Vec<BlobMeta>,
    /// Rolled-up prefixes (with a delimiter), each ending in it.
    pub prefixes: Vec<String>,
    /// Pass to [`ListOptions::continuation`] for the next page; `None` at the end.
    pub continuation: Option<String>,
}

/// A store of blobs: streamed put/get, ranges, metadata, listing, copy and
/// conditional put.
///
/// Keys are non-empty UTF-8 strings of at most 1024 bytes without NUL;
/// backends may refuse more (the `fs` store refuses keys that would escape
/// its root). Every error names the store. Every implementation keeps the
/// contract in the [module docs](self): quoted etags new on every write,
/// content types as given (default [`DEFAULT_CONTENT_TYPE`]), lowercase
/// metadata names, no `IfMatch` wildcard, one writer's whole body under
/// concurrent puts, and a key that is only a prefix is absent.
#[async_trait]
pub trait BlobStore: Send + Sync {
    /// Stores a blob from a stream. Nothing is visible until the whole body
    /// arrived; a body that fails half-way leaves the previous blob (or none).
    /// The options are checked with [`check_put`] before anything is read
    /// or sent.
    async fn put(&self, key: &str, body: ByteStream, options: PutOptions) -> Result<BlobMeta>;

    /// Reads a blob, or the part of it in `range`; `None` when absent.
    async fn get(&self, key: &str, range: Option<ByteRange>) -> Result<Option<Blob>>;

    /// A blob's metadata; `None` when absent.
    async fn head(&self, key: &str) -> Result<Option<BlobMeta>>;

    /// One page of the blobs under a prefix, in key order.
    async fn list(&self, options: &ListOptions) -> Result<ListPage>;

    /// Deletes a blob; whether it existed.
    async fn delete(&self, key: &str) -> Result<bool>;

    /// Copies a blob with its content type and metadata (under a new etag);
    /// `NotFound` when `from` is absent.
    async fn copy(&self, from: &str, to: &str) -> Result<BlobMeta>;

    /// A URL that lets whoever holds it read (HTTP `GET`) this one blob —
    /// and nothing else — until `expires_in` from now: for handing an image
    /// to a browser or another service without proxying its bytes.
    ///
    /// Signing is local: no request is sent and the blob need not exist
    /// yet (a URL for a missing blob answers `404`). `expires_in` must be
    /// between 1 second and [`MAX_SIGNED_URL_EXPIRY`] (7 days), else
    /// [`Error::InvalidInput`]. Stores that cannot sign URLs — `fs` and
    /// `memory`, which have no HTTP endpoint, and `azblob` configured with
    /// a SAS token instead of an account key — return
    /// [`Error::Unsupported`] naming the store. The default implementation
    /// returns `Unsupported` too, without a store name: implementors
    /// override it, to sign or to name themselves (as `fs` and `memory` do).
    /// Anyone with the URL can read the blob until it expires: treat it as
    /// a bearer credential (do not log it).
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use std::time::Duration;
    /// use polyrouter::store::blob::BlobStore;
    /// let s = polyrouter::backends::memory::MemoryStore::new("images");
    /// let e = s.signed_url("a.png", Duration::from_secs(600)).await.unwrap_err();
    /// assert!(matches!(e, polyrouter::Error::Unsupported { .. }), "{e}");
    /// assert!(e.to_string().contains("store `images`"), "{e}");
    /// # });
    /// ```
    async fn signed_url(&self, key: &str, expires_in: Duration) -> Result<String> {
        let _ = (key, expires_in);
        Err(signing_unsupported(
            "",
            "this blob store has no signed URLs",
        ))
    }

    /// Stores bytes held in memory.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use polyrouter::store::blob::{BlobStore, PutOptions};
    /// let s = polyrouter::backends::memory::MemoryStore::new("b");
    /// let m = BlobStore::put_bytes(&s, "k", b"x".to_vec(), PutOptions::new()).await.unwrap();
    /// assert_eq!(m.size, 1);
    /// # });
    /// ```
    async fn put_bytes(&self, key: &str, data: Vec<u8>, options: PutOptions) -> Result<BlobMeta> {
        self.put(key, stream_of(data), options).await
    }

    /// Reads a whole blob into memory; `None` when absent.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use polyrouter::store::blob::BlobStore;
    /// let s = polyrouter::backends::memory::MemoryStore::new("b");
    /// assert!(BlobStore::get_bytes(&s, "missing").await.unwrap().is_none());
    /// # });
    /// ```
    async fn get_bytes(&self, key: &str) -> Result<Option<Vec<u8>>> {
        match self.get(key, None).await? {
            Some(b) => Ok(Some(b.bytes().await?)),
            None => Ok(None),
        }
    }
}

/// The longest a [`BlobStore::signed_url`] may live: 7 days. A signed URL
/// cannot be revoked short of rotating the key that signed it, so its life
/// is kept short; Azure's user-delegation SAS has the same limit.
///
/// ```
/// assert_eq!(polyrouter::store::blob::MAX_SIGNED_URL_EXPIRY.as_secs(), 7 * 24 * 3600);
/// ```
pub const MAX_SIGNED_URL_EXPIRY: Duration = Duration::from_secs(7 * 24 * 3600);

/// Checks the expiry of a [`BlobStore::signed_url`]: at least 1 second
/// (signatures carry whole seconds) and at most [`MAX_SIGNED_URL_EXPIRY`].
/// The error is [`Error::InvalidInput`] naming the store and the key.
///
/// ```
/// use std::time::Duration;
/// use polyrouter::store::blob::check_signed_url_expiry;
/// assert!(check_signed_url_expiry("s", "a.png", Duration::from_secs(600)).is_ok());
/// assert!(check_signed_url_expiry("s", "a.png", Duration::ZERO).is_err());
/// assert!(check_signed_url_expiry("s", "a.png", Duration::from_secs(8 * 24 * 3600)).is_err());
/// ```
pub fn check_signed_url_expiry(store: &str, key: &str, expires_in: Duration) -> Result<()> {
    if expires_in < Duration::from_secs(1) {
        return Err(Error::invalid_input(
            store,
            "",
            format!(
                "a signed URL must live at least 1 second (asked {expires_in:?} for key {key:?})"
            ),
        ));
    }
    if expires_in > MAX_SIGNED_URL_EXPIRY {
        return Err(Error::invalid_input(
            store,
            "",
            format!(
                "a signed URL may live at most 7 days (asked {expires_in:?} for key {key:?}); sign a new one when it runs out"
            ),
        ));
    }
    Ok(())
}

/// The [`Error::Unsupported`] of a blob store that cannot sign URLs, saying
/// why.
///
/// ```
/// let e = polyrouter::store::blob::signing_unsupported("files", "kind `fs` has no HTTP endpoint");
/// assert!(e.to_string().contains("signed URLs"), "{e}");
/// assert!(e.to_string().contains("store `files`"), "{e}");
/// ```
pub fn signing_unsupported(store: &str, why: &str) -> Error {
    Error::unsupported(store, "", format!("signed URLs ({why})"))
}

/// Checks the rules every backend shares, so a key means the same blob on
/// every store: non-empty, at most 1024 bytes, no NUL, no backslash, no
/// leading or trailing `/`, and no `.` or `..` segment (URLs and file
/// systems would resolve those to another name, possibly outside the
/// container or root). The error names the store and says what to do.
///
/// ```
/// use polyrouter::store::blob::check_key;
/// assert!(check_key("s", "a/b.png").is_ok());
/// assert!(check_key("s", "..a/b..").is_ok());
/// for bad in ["", "a\0b", "../x", "a/./b", "/abs", "dir/", "a\\b"] {
///     assert!(check_key("s", bad).is_err(), "{bad:?}");
/// }
/// ```
pub fn check_key(store: &str, key: &str) -> Result<()> {
    let why = if key.is_empty() {
        "a blob key must not be empty"
    } else if key.len() > 1024 {
        "a blob key must be at most 1024 bytes"
    } else if key.contains('\0') {
        "a blob key must not contain NUL"
    } else if key.contains('\\') {
        "a blob key must not contain a backslash"
    } else if key.starts_with('/') || key.ends_with('/') {
        "a blob key must not start or end with `/`"
    } else if key.split('/').any(|s| s == "." || s == "..") {
        "a blob key must not have a `.` or `..` segment (it could name a blob outside the store)"
    } else {
        return Ok(());
    };
    Err(Error::invalid_input(
        store,
        "",
        format!("{why} (key {key:?}); use another key"),
    ))
}

/// Checks everything about a put that can be checked without I/O: the key
/// ([`check_key`]), the content type ([`check_content_type`]), the metadata
/// ([`check_metadata`]) and the condition ([`check_condition`]). Every
/// blob store calls it first, so a put one store refuses is refused by all.
///
/// ```
/// use polyrouter::store::blob::{check_put, BlobCondition, PutOptions};
/// assert!(check_put("s", "a.png", &PutOptions::new().content_type("image/png").meta("owner", "ann")).is_ok());
/// assert!(check_put("s", "a.png", &PutOptions::new().meta("Owner", "ann")).is_err());
/// assert!(check_put("s", "a.png", &PutOptions::new().condition(BlobCondition::IfMatch("*".into()))).is_err());
/// ```
pub fn check_put(store: &str, key: &str, options: &PutOptions) -> Result<()> {
    check_key(store, key)?;
    if let Some(ct) = &options.content_type {
        check_content_type(store, key, ct)?;
    }
    check_metadata(store, &options.metadata)?;
    check_condition(store, key, &options.condition)
}

/// Whether `s` is non-empty printable ASCII (space to `~`) without a space
/// at either end: what an HTTP header value keeps exactly.
fn header_safe(s: &str) -> bool {
    !s.is_empty()
        && s.bytes().all(|b| (0x20..=0x7e).contains(&b))
        && !s.starts_with(' ')
        && !s.ends_with(' ')
}

/// Checks a content type: non-empty printable ASCII without leading or
/// trailing spaces, at most 1024 bytes — what every store returns exactly
/// as given (HTTP would trim the spaces and cannot carry the rest). Omit
/// the content type for [`DEFAULT_CONTENT_TYPE`].
///
/// ```
/// use polyrouter::store::blob::check_content_type;
/// assert!(check_content_type("s", "k", "text/plain; charset=UTF-8").is_ok());
/// for bad in ["", " text/plain", "text/plain ", "text/\u{e9}", "a\nb"] {
///     assert!(check_content_type("s", "k", bad).is_err(), "{bad:?}");
/// }
/// ```
pub fn check_content_type(store: &str, key: &str, content_type: &str) -> Result<()> {
    if header_safe(content_type) && content_type.len() <= 1024 {
        return Ok(());
    }
    Err(Error::invalid_input(
        store,
        "",
        format!(
            "content type {content_type:?} of blob {key:?} is not allowed: use up to 1024 bytes of printable ASCII without leading or trailing spaces, or give none for {DEFAULT_CONTENT_TYPE}"
        ),
    ))
}

/// Checks user metadata: names are lowercase ASCII identifiers
/// (`[a-z_][a-z0-9_]*`: HTTP stores lowercase header names, so `Owner`
/// would come back as `owner`); values are non-empty printable ASCII
/// without leading or trailing spaces (HTTP trims them; encode other text,
/// e.g. percent-encoding, first); names and values together are at most
/// [`MAX_METADATA_BYTES`].
///
/// ```
/// let mut m = std::collections::BTreeMap::new();
/// m.insert("owner".to_string(), "ann".to_string());
/// assert!(polyrouter::store::blob::check_metadata("s", &m).is_ok());
/// m.insert("Owner".to_string(), "ann".to_string());
/// assert!(polyrouter::store::blob::check_metadata("s", &m).is_err());
/// ```
pub fn check_metadata(store: &str, metadata: &BTreeMap<String, String>) -> Result<()> {
    let refuse = |m: String| Err(Error::invalid_input(store, "", m));
    let mut total = 0;
    for (name, value) in metadata {
        let ok_name = name
            .bytes()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == b'_')
            && name
                .bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_');
        if !ok_name {
            return refuse(format!(
                "blob metadata name {name:?} is not allowed: use lowercase ASCII letters, digits and `_`, not starting with a digit"
            ));
        }
        if !header_safe(value) {
            return refuse(format!(
                "blob metadata value of {name:?} is not allowed: use non-empty printable ASCII without leading or trailing spaces; encode other text (e.g. percent-encoding) first"
            ));
        }
        total += name.len() + value.len();
    }
    if total > MAX_METADATA_BYTES {
        return refuse(format!(
            "blob metadata is {total} bytes (names and values); at most {MAX_METADATA_BYTES} are allowed: keep big values in the blob or in a record"
        ));
    }
    Ok(())
}

/// Checks a put's condition: an `IfMatch` etag must be one a store
/// returned — a quoted string (`"…"`) of printable ASCII with no quote
/// inside. `*` is refused: there is no wildcard (read the blob's etag
/// first, or put without a condition).
///
/// ```
/// use polyrouter::store::blob::{check_condition, BlobCondition};
/// assert!(check_condition("s", "k", &BlobCondition::IfMatch("\"0x8DC1\"".into())).is_ok());
/// for bad in ["*", "\"*\"", "0x8DC1", "\"\"", "\"a\"b\""] {
///     assert!(check_condition("s", "k", &BlobCondition::IfMatch(bad.into())).is_err(), "{bad}");
/// }
/// ```
pub fn check_condition(store: &str, key: &str, condition: &BlobCondition) -> Result<()> {
    let BlobCondition::IfMatch(etag) = condition else {
        return Ok(());
    };
    let inner = etag
        .strip_prefix('"')
        .and_then(|e| e.strip_suffix('"'))
        .filter(|e| {
            !e.is_empty() && *e != "*" && e.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b'"')
        });
    if inner.is_some() {
        return Ok(());
    }
    Err(Error::invalid_input(
        store,
        "",
        format!(
            "if-match {etag:?} for blob {key:?} is not an etag: pass the etag exactly as put, head or list returned it (a quoted string like \"0x8DC…\"); `*` is no wildcard here"
        ),
    ))
}

/// The quoted form (`"…"`) of an etag a service returned bare (Azure's
/// listings do; its headers quote).
///
/// ```
/// use polyrouter::store::blob::quoted_etag;
/// assert_eq!(quoted_etag("0x8D"), "\"0x8D\"");
/// assert_eq!(quoted_etag("\"0x8D\""), "\"0x8D\"");
/// ```
pub fn quoted_etag(etag: &str) -> String {
    if etag.len() >= 2 && etag.starts_with('"') && etag.ends_with('"') {
        etag.to_string()
    } else {
        format!("\"{etag}\"")
    }
}

/// Applies [`ListOptions`] to keys already sorted: the prefix, the
/// delimiter roll-up, the continuation and the page size. Used by the
/// backends that list locally (`memory`, `fs`); returns the entries of the
/// page (`Ok(key)` a blob, `Err(prefix)` a rolled-up prefix) and the
/// continuation.
///
/// ```
/// use polyrouter::store::blob::{page_keys, ListOptions};
/// let keys = ["a/1", "a/2", "b", "c/x/y"];
/// let (entries, next) = page_keys(keys.iter().copied(), &ListOptions::prefix("").delimiter("/").limit(2));
/// assert_eq!(entries, vec![Err("a/".to_string()), Ok("b".to_string())]);
/// assert_eq!(next.as_deref(), Some("b"));
/// ```
pub fn page_keys<'a>(
    sorted: impl Iterator<Item = &'a str>,
    options: &ListOptions,
) -> (Vec<std::result::Result<String, String>>, Option<String>) {
    let limit = options.limit.unwrap_or(5000).clamp(1, 5000);
    let after = options.continuation.as_deref();
    let mut out: Vec<std::result::Result<String, String>> = Vec::new();
    for key in sorted {
        let Some(rest) = key.strip_prefix(options.prefix.as_str()) else {
            continue;
        };
        let entry = match options.delimiter.as_deref().filter(|d| !d.is_empty()) {
            Some(d) => match rest.find(d) {
                Some(i) => Err(format!("{}{}", options.prefix, &rest[..i + d.len()])),
                None => Ok(key.to_string()),
            },
            None => Ok(key.to_string()),
        };
        let name = match &entry {
            Ok(k) | Err(k) => k.as_str(),
        };
        if let Some(after) = after {
            // Past the continuation: after it in order, and not inside a
            // prefix that was already returned.
            if name <= after {
                continue;
            }
        }
        if let (Err(p), Some(Err(last))) = (&entry, out.last()) {
            if p == last {
                continue;
            }
        }
        if out.len() == limit {
            let next = out.last().map(|e| match e {
                Ok(k) | Err(k) => k.clone(),
            });
            return (out, next);
        }
        out.push(entry);
    }
    (out, None)
}

/// The error a blob-only store returns from the entity operations of
/// [`Store`](crate::Store) (the router never routes entities to it: its
/// capabilities say `records = false`).
///
/// ```
/// let e = polyrouter::store::blob::records_unsupported("images", "user");
/// assert!(e.to_string().contains("entity records"), "{e}");
/// ```
pub fn records_unsupported(store: &str, entity: &str) -> Error {
    Error::unsupported(
        store,
        entity,
        "entity records (this is a blob-only store; use `router.blobs(..)`)",
    )
}
