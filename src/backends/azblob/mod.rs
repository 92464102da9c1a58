//! `azblob`: Azure Blob Storage (and Azurite) via the official `azure_storage_blob` SDK.
//!
//! ```toml
//! [stores.images]
//! kind = "azblob"
//! connection_string = "${AZURE_STORAGE_CONNECTION_STRING}"
//! container = "images"
//! create_if_missing = true
//! ```
#![doc = include_str!("docs.md")]

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::num::NonZero;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use azure_core::error::ErrorKind;
use azure_core::http::{
    ClientOptions, Etag, ExponentialRetryOptions, HttpClientOptions, NoFormat, Pipeline,
    RequestContent, RetryOptions, Transport, Url, new_http_client, policies::Policy,
};
use azure_storage_blob::models::{
    BlobClientDownloadOptions, BlobClientGetPropertiesResultHeaders,
    BlobClientStartCopyFromUrlResultHeaders, BlobItem, BlockBlobClientCommitBlockListOptions,
    BlockBlobClientCommitBlockListResultHeaders, BlockBlobClientUploadOptions, BlockLookupList,
    CopyStatus, HttpRange,
};
use azure_storage_blob::{BlobClient, BlobContainerClient, BlobContainerClientOptions};
use bytes::{Bytes, BytesMut};
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, StreamExt};

use crate::config::StoreSpec;
use crate::query::Filter;
use crate::store::blob::{
    Blob, BlobCondition, BlobMeta, BlobStore, ByteRange, ByteStream, DEFAULT_CONTENT_TYPE,
    ListOptions, ListPage, PutOptions, check_key, check_put, check_signed_url_expiry, quoted_etag,
    records_unsupported, signing_unsupported,
};
use crate::store::{EntityInfo, StoreQuery, WriteOp, WriteOutcome};
use crate::{Capabilities, Error, Key, Record, Result, Store};

mod config;
mod credentials;
mod list;
mod signing;
#[cfg(test)]
mod tests;

pub use config::{AzBlobConfig, DEV_ACCOUNT, DEV_KEY, MAX_BLOCK_SIZE, MIN_BLOCK_SIZE};
use credentials::Auth;

/// The default bytes per staged block of a streamed put (4 MiB; the
/// `block_size` option changes it); a body that fits in one block goes up
/// in a single request.
pub const BLOCK_SIZE: usize = 4 << 20;
/// Blocks uploaded at the same time; with the block size this bounds a
/// put's buffers (16 MiB at the default).
pub const PARALLEL_BLOCKS: usize = 4;
/// Bytes per ranged GET of a download (4 MiB), at most two in flight.
pub const GET_CHUNK: u64 = 4 << 20;

pub(crate) fn open(spec: StoreSpec) -> BoxFuture<'static, Result<Arc<dyn Store>>> {
    Box::pin(async move {
        let cfg: AzBlobConfig = spec.parse()?;
        cfg.check_block_size()
            .map_err(|m| spec.error(&["block_size"], m))?;
        let store = AzBlobStore::open(&spec.name, cfg)
            .await
            .map_err(|e| match e {
                Error::InvalidInput { message, .. } => spec.error(&[], message),
                other => other,
            })?;
        Ok(Arc::new(store) as Arc<dyn Store>)
    })
}

/// A blob store on an Azure Blob Storage container, through the official
/// `azure_storage_blob` SDK.
///
/// ```no_run
/// # async fn f() -> polyrouter::Result<()> {
/// use polyrouter::backends::azblob::{AzBlobConfig, AzBlobStore};
/// use polyrouter::store::blob::{BlobStore, PutOptions};
/// let s = AzBlobStore::open("images", AzBlobConfig::dev("images", "http://127.0.0.1:10000/devstoreaccount1")).await?;
/// s.put_bytes("a.png", vec![1, 2, 3], PutOptions::new().content_type("image/png")).await?;
/// # Ok(()) }
/// ```
pub struct AzBlobStore {
    name: String,
    location: String,
    caps: Capabilities,
    account: String,
    container_name: String,
    /// The container's URL (with the SAS query when the store has one).
    container_url: Url,
    container: BlobContainerClient,
    /// For the requests the SDK has no method for (delimiter listing).
    pipeline: Pipeline,
    /// The service version the SDK speaks (`x-ms-version`).
    version: String,
    auth: Auth,
    /// Strings that must never appear in an error (key, SAS, signature).
    secrets: Vec<String>,
    block_size: usize,
}

impl fmt::Debug for AzBlobStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AzBlobStore")
            .field("name", &self.name)
            .field("location", &self.location)
            .field("block_size", &self.block_size)
            .finish_non_exhaustive()
    }
}

/// The SDK's client options: shared-key signing (when the store has a
/// key), retries of transient failures, and one HTTP client for every
/// request of the store.
fn client_options(account: &str, auth: &Auth, max_retries: u32) -> ClientOptions {
    let retry = if max_retries == 0 {
        RetryOptions::none()
    } else {
        RetryOptions::exponential(ExponentialRetryOptions {
            max_retries,
            initial_delay: azure_core::time::Duration::milliseconds(100),
            max_total_elapsed: azure_core::time::Duration::seconds(30),
            ..Default::default()
        })
    };
    let mut per_try_policies: Vec<Arc<dyn Policy>> = Vec::new();
    if let Auth::Key(key) = auth {
        per_try_policies.push(Arc::new(signing::SharedKeyPolicy::new(
            account,
            key.clone(),
        )));
    }
    // What the SDK's clients default to: no automatic decompression (ranged
    // downloads need the bytes as stored).
    let transport = Transport::new(new_http_client(Some(HttpClientOptions {
        automatic_decompression: false,
    })));
    ClientOptions {
        retry,
        per_try_policies,
        transport: Some(transport),
        ..Default::default()
    }
}

impl AzBlobStore {
    /// Connects, checks the container exists (creating it when
    /// `create_if_missing`), and returns the store.
    ///
    /// ```no_run
    /// # async fn f() -> polyrouter::Result<()> {
    /// use polyrouter::backends::azblob::{AzBlobConfig, AzBlobStore};
    /// let s = AzBlobStore::open("b", AzBlobConfig::dev("c1", "http://127.0.0.1:10000/devstoreaccount1")).await?;
    /// # Ok(()) }
    /// ```
    pub async fn open(name: &str, cfg: AzBlobConfig) -> Result<Self> {
        let invalid = |m: String| Error::invalid_input(name, "", m);
        config::check_container(&cfg.container).map_err(invalid)?;
        cfg.check_block_size().map_err(invalid)?;
        let r = credentials::resolve(&cfg).map_err(invalid)?;
        let mut container_url = Url::parse(&format!("{}/", r.endpoint))
            .ok()
            .filter(|u| !u.cannot_be_a_base() && matches!(u.scheme(), "http" | "https"))
            .ok_or_else(|| {
                invalid(format!(
                    "endpoint {} is not an http(s) URL",
                    crate::config::redact_url(&r.endpoint)
                ))
            })?;
        // The SDK logs request URLs with their user-info: refuse it here.
        if !container_url.username().is_empty() || container_url.password().is_some() {
            return Err(invalid(
                "the blob endpoint must not carry credentials (`user:password@`); authenticate with `key`, `sas_token`, or the connection string's `AccountKey` / `SharedAccessSignature`".into(),
            ));
        }
        container_url
            .path_segments_mut()
            .map_err(|_| invalid("the endpoint cannot hold a path".into()))?
            .pop_if_empty()
            .push(&cfg.container);
        if let Auth::Sas(sas) = &r.auth {
            container_url.set_query(Some(sas.secret()));
        }
        let options = client_options(&r.account, &r.auth, cfg.max_retries);
        let container_options = BlobContainerClientOptions {
            client_options: options.clone(),
            ..Default::default()
        };
        let version = container_options.version.clone();
        let container =
            BlobContainerClient::new(container_url.clone(), None, Some(container_options))
                .map_err(|_| invalid("the endpoint is not a valid container URL".into()))?;
        let store = AzBlobStore {
            name: name.into(),
            location: format!(
                "{}/{}",
                crate::config::redact_url(&r.endpoint),
                cfg.container
            ),
            caps: Capabilities {
                shared: true,
                ..Capabilities::blob_only()
            },
            account: r.account,
            container_name: cfg.container.clone(),
            container_url,
            container,
            pipeline: list::pipeline(options),
            version,
            auth: r.auth,
            secrets: r.secrets,
            block_size: cfg.block_size as usize,
        };
        store.ensure_container(&cfg).await?;
        Ok(store)
    }

    async fn ensure_container(&self, cfg: &AzBlobConfig) -> Result<()> {
        match self.container.get_properties(None).await {
            Ok(_) => return Ok(()),
            Err(e) if status(&e) == Some(404) => {}
            Err(e) => return Err(self.err(e, "cannot read the container")),
        }
        if !cfg.create_if_missing {
            return Err(Error::invalid_input(
                &self.name,
                "",
                format!(
                    "container `{}` does not exist; create it or set `create_if_missing = true`",
                    cfg.container
                ),
            ));
        }
        match self.container.create(None).await {
            Ok(_) => Ok(()),
            Err(e) if status(&e) == Some(409) => Ok(()), // created meanwhile
            Err(e) => Err(self.err(e, "cannot create the container")),
        }
    }

    /// The SDK's container client, for what `BlobStore` does not cover
    /// (leases, tiers, tags); its requests carry the store's credentials.
    ///
    /// ```no_run
    /// # async fn f(s: polyrouter::backends::azblob::AzBlobStore) {
    /// let url = s.container_client().url();
    /// # }
    /// ```
    pub fn container_client(&self) -> &BlobContainerClient {
        &self.container
    }

    /// Deletes the whole container and every blob in it (test clean-up,
    /// decommissioning).
    ///
    /// ```no_run
    /// # async fn f(s: polyrouter::backends::azblob::AzBlobStore) -> polyrouter::Result<()> {
    /// s.delete_container().await?;
    /// # Ok(()) }
    /// ```
    pub async fn delete_container(&self) -> Result<()> {
        match self.container.delete(None).await {
            Ok(_) => Ok(()),
            Err(e) if status(&e) == Some(404) => Ok(()),
            Err(e) => Err(self.err(e, "cannot delete the container")),
        }
    }

    /// The blob's URL: `/` in the key separates path segments, every
    /// segment percent-encoded (with the SAS query when the store has one).
    fn blob_url(&self, key: &str) -> Url {
        let mut url = self.container_url.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.extend(key.split('/'));
        }
        url
    }

    fn blob(&self, key: &str) -> BlobClient {
        self.container.blob_client(key)
    }

    /// A read-only (`sp=r`) service SAS URL for one blob (`sr=b`), valid
    /// until `expiry` (whole seconds), signed with the account key. No
    /// bounds are checked here: [`BlobStore::signed_url`] checks them, and
    /// tests sign already-expired URLs through this.
    fn sign_until(&self, key: &str, expiry: azure_core::time::OffsetDateTime) -> Result<String> {
        let Auth::Key(account_key) = &self.auth else {
            return Err(signing_unsupported(
                &self.name,
                "this `azblob` store authenticates with a SAS token, and a blob URL can only be signed with the account key; \
                 configure `key` or a connection string with `AccountKey`, or hand out a SAS you issued yourself",
            ));
        };
        let sas = signing::read_sas(
            &self.account,
            account_key,
            &self.container_name,
            key,
            expiry,
        )
        .map_err(|e| self.err(e, "cannot sign a blob URL"))?;
        let mut url = self.blob_url(key);
        url.set_query(Some(&sas));
        Ok(url.to_string())
    }

    /// Maps an SDK error: connection failures, 5xx, 408 and 429 are
    /// `Unavailable`; 403 names the credentials; the rest `Backend`.
    /// Secrets are redacted from every message.
    fn err(&self, e: azure_core::Error, what: &str) -> Error {
        map_err(&self.name, &self.location, &self.secrets, e, what)
    }

    async fn head_inner(&self, key: &str) -> Result<Option<BlobMeta>> {
        match self.blob(key).get_properties(None).await {
            Ok(p) => {
                let meta = (|| {
                    Ok::<_, azure_core::Error>(BlobMeta {
                        key: key.into(),
                        size: p.content_length()?.unwrap_or(0),
                        etag: quoted_etag(&p.etag()?.map(|e| e.to_string()).unwrap_or_default()),
                        content_type: p
                            .content_type()?
                            .unwrap_or_else(|| DEFAULT_CONTENT_TYPE.into()),
                        metadata: p.metadata()?.into_iter().collect(),
                        last_modified: p.last_modified()?.map(to_chrono).unwrap_or_default(),
                    })
                })();
                meta.map(Some)
                    .map_err(|e| self.err(e, "cannot read a blob's properties"))
            }
            Err(e) if status(&e) == Some(404) => Ok(None),
            Err(e) => Err(self.err(e, "cannot read a blob's properties")),
        }
    }

    /// A failed write as `Conflict` (with the current etag) when it lost to
    /// a condition or to a concurrent commit; otherwise the mapped error.
    async fn write_failed(
        &self,
        key: &str,
        condition: &BlobCondition,
        e: azure_core::Error,
    ) -> Error {
        let code = error_code(&e);
        let lost_blocks = status(&e) == Some(400) && code.as_deref() == Some("InvalidBlockList");
        if !matches!(status(&e), Some(409) | Some(412)) && !lost_blocks {
            return self.err(e, "cannot write a blob");
        }
        let current = self.head_inner(key).await.ok().flatten().map(|m| m.etag);
        let mut conflict = condition.conflict(&self.name, key, current.as_deref());
        if lost_blocks {
            if let Error::Conflict { key: k, .. } = &mut conflict {
                k.push_str(
                    " (another put to this key committed while this one was staging its blocks, which discards them; put again)",
                );
            }
        }
        conflict
    }

    async fn put_inner(
        &self,
        key: &str,
        mut body: ByteStream,
        options: PutOptions,
    ) -> Result<BlobMeta> {
        let read_err = |e: std::io::Error| {
            Error::invalid_input(
                &self.name,
                "",
                format!(
                    "the body of blob {key:?} failed while reading it: {e}; nothing was stored"
                ),
            )
        };
        let metadata: HashMap<String, String> = options
            .metadata
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let (if_match, if_none_match) = match &options.condition {
            BlobCondition::None => (None, None),
            BlobCondition::IfAbsent => (None, Some(Etag::from("*"))),
            BlobCondition::IfMatch(e) => (Some(Etag::from(e.as_str())), None),
        };
        let content_type = options.stored_content_type().to_string();
        let client = self.blob(key).block_blob_client();
        // Fill the first block; a body that fits goes up in one request.
        let mut block = BytesMut::with_capacity(self.block_size.min(1 << 20));
        let mut ended = false;
        while block.len() < self.block_size {
            match body.next().await {
                Some(chunk) => block.extend_from_slice(&chunk.map_err(read_err)?),
                None => {
                    ended = true;
                    break;
                }
            }
        }
        let mut size = block.len() as u64;
        let written = if ended {
            let one_request = NonZero::new(self.block_size.max(block.len()).max(1) as u64);
            let upload = BlockBlobClientUploadOptions {
                blob_content_type: Some(content_type.clone()),
                metadata: Some(metadata),
                if_match: if_match.clone(),
                if_none_match: if_none_match.clone(),
                partition_size: one_request,
                parallel: NonZero::new(1),
                ..Default::default()
            };
            let content: RequestContent<Bytes, NoFormat> = block.freeze().into();
            client
                .upload(content, Some(upload))
                .await
                .map(|r| (r.etag, r.last_modified))
        } else {
            // Block ids are random per block, so no two puts (to this key
            // or any) ever share one: a commit names exactly its own blocks.
            let mut ids: Vec<Vec<u8>> = Vec::new();
            let mut in_flight = FuturesUnordered::new();
            let mut carry = block;
            let mut done = false;
            while !done || !carry.is_empty() {
                // Cut full blocks off the buffer; read more when short.
                while !done && carry.len() < self.block_size {
                    match body.next().await {
                        Some(chunk) => {
                            let chunk = chunk.map_err(read_err)?;
                            size += chunk.len() as u64;
                            carry.extend_from_slice(&chunk);
                        }
                        None => done = true,
                    }
                }
                let take = carry.len().min(self.block_size);
                let part: Bytes = carry.split_to(take).freeze();
                let id = uuid::Uuid::new_v4().as_bytes().to_vec();
                ids.push(id.clone());
                let client = self.blob(key).block_blob_client();
                in_flight.push(async move {
                    let len = part.len() as u64;
                    let content: RequestContent<Bytes, NoFormat> = part.into();
                    client.stage_block(&id, len, content, None).await
                });
                if in_flight.len() >= PARALLEL_BLOCKS {
                    if let Some(r) = in_flight.next().await {
                        r.map_err(|e| self.err(e, "cannot upload a block"))?;
                    }
                }
            }
            while let Some(r) = in_flight.next().await {
                r.map_err(|e| self.err(e, "cannot upload a block"))?;
            }
            let list = BlockLookupList {
                uncommitted: Some(ids),
                ..Default::default()
            };
            let list = list
                .try_into()
                .map_err(|e| self.err(e, "cannot build a block list"))?;
            let commit = BlockBlobClientCommitBlockListOptions {
                blob_content_type: Some(content_type.clone()),
                metadata: Some(metadata),
                if_match,
                if_none_match,
                ..Default::default()
            };
            match client.commit_block_list(list, Some(commit)).await {
                Ok(r) => r.etag().and_then(|etag| Ok((etag, r.last_modified()?))),
                Err(e) => Err(e),
            }
        };
        match written {
            // The response says what this write stored: its etag and time.
            // (Reading them back could see a concurrent writer's blob.)
            Ok((Some(etag), last_modified)) => Ok(BlobMeta {
                key: key.into(),
                size,
                etag: quoted_etag(etag.as_ref()),
                content_type,
                metadata: options.metadata,
                last_modified: last_modified.map(to_chrono).unwrap_or_else(Utc::now),
            }),
            Ok((None, _)) => Err(Error::backend(
                &self.name,
                "",
                format!("blob {key:?} was written but the service returned no etag"),
            )),
            Err(e) => Err(self.write_failed(key, &options.condition, e).await),
        }
    }
}

/// `text` with every secret replaced by `***`.
fn redact(secrets: &[String], text: &str) -> String {
    let mut out = text.to_string();
    for s in secrets {
        if !s.is_empty() {
            out = out.replace(s.as_str(), "***");
        }
    }
    out
}

/// See [`AzBlobStore::err`].
fn map_err(
    store: &str,
    location: &str,
    secrets: &[String],
    e: azure_core::Error,
    what: &str,
) -> Error {
    match e.kind() {
        ErrorKind::Io | ErrorKind::Connection => Error::unavailable(
            store,
            "",
            format!(
                "{what}: cannot reach {location}: {}",
                redact(secrets, &e.to_string())
            ),
        ),
        ErrorKind::HttpResponse {
            status, error_code, ..
        } => {
            let code = error_code.clone().unwrap_or_default();
            let s = u16::from(*status);
            if s >= 500 || s == 429 || s == 408 {
                Error::unavailable(store, "", format!("{what}: HTTP {s} {code}"))
            } else if s == 403 {
                Error::backend(
                    store,
                    "",
                    format!(
                        "{what}: the service refused the credentials (HTTP 403 {code}); check the account key, SAS or connection string"
                    ),
                )
            } else {
                Error::backend(store, "", format!("{what}: HTTP {s} {code}"))
            }
        }
        _ => Error::backend(
            store,
            "",
            format!("{what}: {}", redact(secrets, &e.to_string())),
        ),
    }
}

/// The error of a read whose blob was overwritten part-way (its etag
/// no longer matched).
fn changed_while_read(store: &str) -> Error {
    Error::backend(
        store,
        "",
        "the blob changed while it was being read; read it again",
    )
}

fn status(e: &azure_core::Error) -> Option<u16> {
    e.http_status().map(u16::from)
}

fn error_code(e: &azure_core::Error) -> Option<String> {
    match e.kind() {
        ErrorKind::HttpResponse { error_code, .. } => error_code.clone(),
        _ => None,
    }
}

fn to_chrono(t: azure_core::time::OffsetDateTime) -> DateTime<Utc> {
    DateTime::from_timestamp(t.unix_timestamp(), t.nanosecond()).unwrap_or_default()
}

/// A listed blob as [`BlobMeta`]; etags quoted like `head`'s.
fn meta_of(b: BlobItem) -> BlobMeta {
    let p = b.properties.unwrap_or_default();
    let metadata: BTreeMap<String, String> = b
        .metadata
        .and_then(|m| m.values)
        .unwrap_or_default()
        .into_iter()
        .collect();
    BlobMeta {
        key: b.name.unwrap_or_default(),
        size: p.content_length.unwrap_or(0),
        etag: quoted_etag(&p.etag.map(|e| e.to_string()).unwrap_or_default()),
        content_type: p
            .content_type
            .filter(|c| !c.is_empty())
            .unwrap_or_else(|| DEFAULT_CONTENT_TYPE.into()),
        metadata,
        last_modified: p.last_modified.map(to_chrono).unwrap_or_default(),
    }
}

#[async_trait]
impl BlobStore for AzBlobStore {
    async fn put(&self, key: &str, body: ByteStream, options: PutOptions) -> Result<BlobMeta> {
        check_put(&self.name, key, &options)?;
        self.put_inner(key, body, options).await
    }

    async fn get(&self, key: &str, range: Option<ByteRange>) -> Result<Option<Blob>> {
        check_key(&self.name, key)?;
        // Properties first: the size resolves the range and the etag pins
        // every ranged GET to this version of the blob.
        let Some(meta) = self.head_inner(key).await? else {
            return Ok(None);
        };
        let (start, end) = range
            .unwrap_or(ByteRange::new(0, None))
            .resolve(meta.size)
            .map_err(|m| Error::invalid_input(&self.name, "", format!("{m}; key {key:?}")))?;
        if start == end {
            return Ok(Some(Blob {
                meta,
                body: futures::stream::empty().boxed(),
            }));
        }
        let options = BlobClientDownloadOptions {
            range: Some(HttpRange::from(start..end)),
            if_match: Some(Etag::from(meta.etag.as_str())),
            parallel: NonZero::new(2),
            partition_size: NonZero::new(GET_CHUNK as usize),
            ..Default::default()
        };
        let (name, location, secrets) = (
            self.name.clone(),
            self.location.clone(),
            self.secrets.clone(),
        );
        let download = match self.blob(key).download(Some(options)).await {
            Ok(d) => d,
            Err(e) if status(&e) == Some(412) => return Err(changed_while_read(&name)),
            Err(e) if status(&e) == Some(404) => return Ok(None),
            Err(e) => return Err(self.err(e, "cannot read a blob")),
        };
        let body = download.body.map(move |chunk| {
            chunk.map_err(|e| match status(&e) {
                Some(412) => changed_while_read(&name),
                _ => map_err(&name, &location, &secrets, e, "cannot read a blob"),
            })
        });
        Ok(Some(Blob {
            meta,
            body: body.boxed(),
        }))
    }

    async fn head(&self, key: &str) -> Result<Option<BlobMeta>> {
        check_key(&self.name, key)?;
        self.head_inner(key).await
    }

    async fn list(&self, options: &ListOptions) -> Result<ListPage> {
        let page = list::list_page(&self.pipeline, &self.container_url, &self.version, options)
            .await
            .map_err(|e| self.err(e, "cannot list blobs"))?;
        Ok(ListPage {
            blobs: page.blobs.into_iter().map(meta_of).collect(),
            prefixes: page.prefixes,
            continuation: page.next_marker,
        })
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        check_key(&self.name, key)?;
        match self.blob(key).delete(None).await {
            Ok(_) => Ok(true),
            Err(e) if status(&e) == Some(404) => Ok(false),
            Err(e) => Err(self.err(e, "cannot delete a blob")),
        }
    }

    async fn copy(&self, from: &str, to: &str) -> Result<BlobMeta> {
        check_key(&self.name, from)?;
        check_key(&self.name, to)?;
        // Same account: the source is authorized like the request itself
        // (its URL carries the SAS when the store has one).
        let source = self.blob(from).url().to_string();
        let started = match self.blob(to).start_copy_from_url(source, None).await {
            Ok(r) => r,
            Err(e) if status(&e) == Some(404) => {
                return Err(Error::NotFound {
                    store: self.name.clone(),
                    entity: String::new(),
                    key: from.into(),
                });
            }
            Err(e) => return Err(self.err(e, "cannot copy a blob")),
        };
        // A copy within an account usually completes at once; wait for it otherwise.
        let mut status_now = started
            .copy_status()
            .map_err(|e| self.err(e, "cannot read a copy's status"))?
            .unwrap_or(CopyStatus::Success);
        for _ in 0..600 {
            if status_now != CopyStatus::Pending {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            status_now = match self.blob(to).get_properties(None).await {
                Ok(p) => p
                    .copy_status()
                    .map_err(|e| self.err(e, "cannot read a copy's status"))?
                    .unwrap_or(CopyStatus::Success),
                Err(e) => return Err(self.err(e, "cannot follow a copy")),
            };
        }
        if status_now != CopyStatus::Success {
            return Err(Error::backend(
                &self.name,
                "",
                format!("copying {from:?} to {to:?} ended as {status_now:?}"),
            ));
        }
        self.head_inner(to).await?.ok_or_else(|| {
            Error::backend(&self.name, "", format!("copied blob {to:?} is not there"))
        })
    }

    async fn signed_url(&self, key: &str, expires_in: Duration) -> Result<String> {
        check_key(&self.name, key)?;
        check_signed_url_expiry(&self.name, key, expires_in)?;
        self.sign_until(
            key,
            azure_core::time::OffsetDateTime::now_utc() + expires_in,
        )
    }
}

#[async_trait]
impl Store for AzBlobStore {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "azblob"
    }

    fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    fn location(&self) -> String {
        self.location.clone()
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
        self.container
            .get_properties(None)
            .await
            .map(|_| ())
            .map_err(|e| self.err(e, "cannot read the container"))
    }

    fn as_blob(&self) -> Option<&dyn BlobStore> {
        Some(self)
    }
}
