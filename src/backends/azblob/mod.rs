//! `azblob`: Azure Blob Storage (and Azurite) via the `azure_storage_blobs` SDK.
//!
//! ```toml
//! [stores.images]
//! kind = "azblob"
//! connection_string = "${AZURE_STORAGE_CONNECTION_STRING}"
//! container = "images"
//! create_if_missing = true
//! ```
#![doc = include_str!("docs.md")]

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use azure_core_021::error::ErrorKind;
use azure_core_021::request_options::{IfMatchCondition, Metadata, NextMarker};
use azure_core_021::{ExponentialRetryOptions, RetryOptions};
use azure_storage::shared_access_signature::service_sas::BlobSasPermissions;
use azure_storage::{CloudLocation, ConnectionString, StorageCredentials, StorageCredentialsInner};
use azure_storage_blobs::blob::{BlobBlockType, BlockList, CopyStatus};
use azure_storage_blobs::prelude::{BlobClient, ClientBuilder, ContainerClient};
use bytes::{Bytes, BytesMut};
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, StreamExt};

use crate::config::StoreSpec;
use crate::query::Filter;
use crate::store::blob::{
    Blob, BlobCondition, BlobMeta, BlobStore, ByteRange, ByteStream, ListOptions, ListPage,
    PutOptions, check_key, check_metadata, check_signed_url_expiry, records_unsupported,
    signing_unsupported,
};
use crate::store::{EntityInfo, StoreQuery, WriteOp, WriteOutcome};
use crate::{Capabilities, Error, Key, Record, Result, Store};

#[cfg(test)]
mod classify_tests;
mod config;
#[cfg(test)]
mod tests;

pub use config::{AzBlobConfig, DEV_ACCOUNT, DEV_KEY};

/// Bytes per staged block of a streamed put (4 MiB); a body that fits in
/// one block goes up in a single request.
pub const BLOCK_SIZE: usize = 4 << 20;
/// Blocks uploaded at the same time; with [`BLOCK_SIZE`] this bounds a
/// put's buffers to 16 MiB.
pub const PARALLEL_BLOCKS: usize = 4;
/// Bytes per ranged GET of a download (4 MiB).
pub const GET_CHUNK: u64 = 4 << 20;

pub(crate) fn open(spec: StoreSpec) -> BoxFuture<'static, Result<Arc<dyn Store>>> {
    Box::pin(async move {
        let cfg: AzBlobConfig = spec.parse()?;
        let store = AzBlobStore::open(&spec.name, cfg)
            .await
            .map_err(|e| match e {
                Error::InvalidInput { message, .. } => spec.error(&[], message),
                other => other,
            })?;
        Ok(Arc::new(store) as Arc<dyn Store>)
    })
}

/// A blob store on an Azure Blob Storage container.
///
/// ```no_run
/// # async fn f() -> polyrouter::Result<()> {
/// use polyrouter::backends::azblob::{AzBlobConfig, AzBlobStore};
/// use polyrouter::store::blob::{BlobStore, PutOptions};
/// let s = AzBlobStore::open("images", AzBlobConfig::dev("images", "http://127.0.0.1:10000/devstoreaccount1")).await?;
/// s.put_bytes("a.png", vec![1, 2, 3], PutOptions::new().content_type("image/png")).await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct AzBlobStore {
    name: String,
    location: String,
    caps: Capabilities,
    container: ContainerClient,
    /// Strings that must never appear in an error (key, SAS signature).
    secrets: Vec<String>,
    /// Whether the credentials are an account key, which can sign URLs.
    signs: bool,
}

/// The account, endpoint and credentials a config names.
struct Resolved {
    account: String,
    endpoint: String,
    credentials: StorageCredentials,
    secrets: Vec<String>,
}

fn resolve(cfg: &AzBlobConfig) -> std::result::Result<Resolved, String> {
    let mut secrets = Vec::new();
    if let Some(cs) = &cfg.connection_string {
        if cfg.key.is_some() || cfg.sas_token.is_some() || cfg.account.is_some() {
            return Err(
                "set either `connection_string` or `account` with `key` / `sas_token`, not both"
                    .into(),
            );
        }
        let parsed = ConnectionString::new(cs.expose())
            .map_err(|_| "`connection_string` is not a storage connection string (`AccountName=…;AccountKey=…;BlobEndpoint=…`)".to_string())?;
        let dev = parsed.use_development_storage == Some(true);
        // `UseDevelopmentStorage=true` alone means Azurite's well-known key.
        let dev_key = dev && parsed.account_key.is_none() && parsed.sas.is_none();
        let credentials = if dev_key {
            StorageCredentials::access_key(DEV_ACCOUNT, DEV_KEY.to_string())
        } else {
            parsed.storage_credentials().map_err(|_| {
                "`connection_string` has neither `AccountKey` nor `SharedAccessSignature`"
                    .to_string()
            })?
        };
        secrets.extend(parsed.account_key.map(str::to_string));
        secrets.extend(parsed.sas.map(str::to_string));
        let account = match (parsed.account_name, dev) {
            (Some(a), _) => a.to_string(),
            (None, true) => DEV_ACCOUNT.to_string(),
            (None, false) => return Err("`connection_string` has no `AccountName`".into()),
        };
        let endpoint = match (parsed.blob_endpoint, dev) {
            (Some(e), _) => e.trim_end_matches('/').to_string(),
            (None, true) => format!("http://127.0.0.1:10000/{DEV_ACCOUNT}"),
            (None, false) => {
                let proto = match parsed.default_endpoints_protocol {
                    Some(azure_storage::EndpointProtocol::Http) => "http",
                    _ => "https",
                };
                let suffix = parsed.endpoint_suffix.unwrap_or("core.windows.net");
                format!("{proto}://{account}.blob.{suffix}")
            }
        };
        return Ok(Resolved {
            account,
            endpoint,
            credentials,
            secrets,
        });
    }
    let Some(account) = cfg.account.clone() else {
        return Err("set `connection_string`, or `account` with `key` or `sas_token`".into());
    };
    let credentials = match (&cfg.key, &cfg.sas_token) {
        (Some(key), None) => {
            secrets.push(key.expose().to_string());
            StorageCredentials::access_key(account.clone(), key.expose().to_string())
        }
        (None, Some(sas)) => {
            secrets.push(sas.expose().to_string());
            StorageCredentials::sas_token(sas.expose().trim_start_matches('?'))
                .map_err(|_| "`sas_token` is not a SAS query string (`sv=…&sig=…`)".to_string())?
        }
        (Some(_), Some(_)) => return Err("set `key` or `sas_token`, not both".into()),
        (None, None) => return Err(format!("account `{account}` needs `key` or `sas_token`")),
    };
    let endpoint = cfg
        .endpoint
        .clone()
        .map(|e| e.trim_end_matches('/').to_string())
        .unwrap_or_else(|| format!("https://{account}.blob.core.windows.net"));
    Ok(Resolved {
        account,
        endpoint,
        credentials,
        secrets,
    })
}

/// The SAS signature (`sig=…`) of a token, which is what must stay hidden.
fn sig_of(secret: &str) -> Option<String> {
    secret
        .split(['&', ';', '?'])
        .find_map(|p| p.strip_prefix("sig="))
        .map(str::to_string)
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
        config::check_container(&cfg.container).map_err(|m| Error::invalid_input(name, "", m))?;
        let r = resolve(&cfg).map_err(|m| Error::invalid_input(name, "", m))?;
        let mut secrets = r.secrets.clone();
        secrets.extend(r.secrets.iter().filter_map(|s| sig_of(s)));
        let signs = matches!(
            &*r.credentials.0.read().await,
            StorageCredentialsInner::Key(..)
        );
        let retry = if cfg.max_retries == 0 {
            RetryOptions::none()
        } else {
            RetryOptions::exponential(
                ExponentialRetryOptions::default()
                    .max_retries(cfg.max_retries)
                    .initial_delay(Duration::from_millis(100))
                    .max_total_elapsed(Duration::from_secs(30)),
            )
        };
        let container = ClientBuilder::with_location(
            CloudLocation::Custom {
                account: r.account.clone(),
                uri: r.endpoint.clone(),
            },
            r.credentials,
        )
        .retry(retry)
        .container_client(cfg.container.clone());
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
            container,
            secrets,
            signs,
        };
        store.ensure_container(&cfg).await?;
        Ok(store)
    }

    async fn ensure_container(&self, cfg: &AzBlobConfig) -> Result<()> {
        match self.container.get_properties().await {
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
        match self.container.create().await {
            Ok(_) => Ok(()),
            Err(e) if status(&e) == Some(409) => Ok(()), // created meanwhile
            Err(e) => Err(self.err(e, "cannot create the container")),
        }
    }

    /// The SDK's container client, for what `BlobStore` does not cover
    /// (leases, tiers, SAS with other permissions).
    ///
    /// ```no_run
    /// # async fn f(s: polyrouter::backends::azblob::AzBlobStore) {
    /// let url = s.container_client().url().unwrap();
    /// # }
    /// ```
    pub fn container_client(&self) -> &ContainerClient {
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
        match self.container.delete().await {
            Ok(_) => Ok(()),
            Err(e) if status(&e) == Some(404) => Ok(()),
            Err(e) => Err(self.err(e, "cannot delete the container")),
        }
    }

    /// A read-only (`sp=r`) service SAS URL for one blob (`sr=b`), valid
    /// until `expiry` (whole seconds), signed with the account key. No
    /// bounds are checked here: [`BlobStore::signed_url`] checks them, and
    /// tests sign already-expired URLs through this.
    async fn sign_until(&self, key: &str, expiry: time::OffsetDateTime) -> Result<String> {
        if !self.signs {
            return Err(signing_unsupported(
                &self.name,
                "this `azblob` store authenticates with a SAS token, and a blob URL can only be signed with the account key; \
                 configure `key` or a connection string with `AccountKey`, or hand out a SAS you issued yourself",
            ));
        }
        let client = self.blob(key);
        let permissions = BlobSasPermissions {
            read: true,
            ..Default::default()
        };
        let sas = client
            .shared_access_signature(permissions, expiry)
            .await
            .map_err(|e| self.err(e, "cannot sign a blob URL"))?;
        let url = client
            .generate_signed_blob_url(&sas)
            .map_err(|e| self.err(e, "cannot build a signed blob URL"))?;
        Ok(url.to_string())
    }

    fn blob(&self, key: &str) -> BlobClient {
        self.container.blob_client(key)
    }

    fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for s in &self.secrets {
            if !s.is_empty() {
                out = out.replace(s.as_str(), "***");
            }
        }
        out
    }

    /// Maps an SDK error (the classification table is in
    /// docs/resilience.md): 503 `ServerBusy` and 429 are `Rejected`
    /// (throttled: the request was not processed); connection failures,
    /// 408 and the other 5xx are `Unavailable`; 403 names the credentials;
    /// the rest `Backend`. Secrets are redacted from every message.
    fn err(&self, e: azure_core_021::Error, what: &str) -> Error {
        let text = self.redact(&e.to_string());
        match e.kind() {
            ErrorKind::Io => Error::unavailable(
                &self.name,
                "",
                format!("{what}: cannot reach {}: {text}", self.location),
            ),
            ErrorKind::HttpResponse { status, error_code } => {
                let code = error_code.clone().unwrap_or_default();
                let s = u16::from(*status);
                if s == 503 || s == 429 {
                    Error::rejected(
                        &self.name,
                        "",
                        crate::Rejection::Throttled,
                        format!(
                            "{what}: the service is busy (HTTP {s} {code}); nothing was written — retry later"
                        ),
                    )
                } else if s >= 500 || s == 408 {
                    Error::unavailable(&self.name, "", format!("{what}: HTTP {s} {code}"))
                } else if s == 403 {
                    Error::backend(
                        &self.name,
                        "",
                        format!(
                            "{what}: the service refused the credentials (HTTP 403 {code}); check the account key, SAS or connection string"
                        ),
                    )
                } else {
                    Error::backend(&self.name, "", format!("{what}: HTTP {s} {code}"))
                }
            }
            _ => Error::backend(&self.name, "", format!("{what}: {text}")),
        }
    }

    async fn head_inner(&self, key: &str) -> Result<Option<BlobMeta>> {
        match self.blob(key).get_properties().await {
            Ok(p) => Ok(Some(meta_of(key, &p.blob))),
            Err(e) if status(&e) == Some(404) => Ok(None),
            Err(e) => Err(self.err(e, "cannot read a blob's properties")),
        }
    }

    /// A precondition failure (412 / 409) as `Conflict`, with the current etag.
    async fn conflict(&self, key: &str, condition: &BlobCondition) -> Error {
        let current = self.head_inner(key).await.ok().flatten().map(|m| m.etag);
        condition.conflict(&self.name, key, current.as_deref())
    }

    async fn put_inner(
        &self,
        key: &str,
        mut body: ByteStream,
        options: PutOptions,
    ) -> Result<BlobMeta> {
        let client = self.blob(key);
        let read_err = |e: std::io::Error| {
            Error::invalid_input(
                &self.name,
                "",
                format!(
                    "the body of blob {key:?} failed while reading it: {e}; nothing was stored"
                ),
            )
        };
        let mut metadata = Metadata::new();
        for (k, v) in &options.metadata {
            metadata.insert(k.clone(), v.clone());
        }
        let condition = match &options.condition {
            BlobCondition::None => None,
            BlobCondition::IfAbsent => Some(IfMatchCondition::NotMatch("*".into())),
            BlobCondition::IfMatch(e) => Some(IfMatchCondition::Match(e.clone())),
        };
        let content_type = options.content_type.clone();
        // Fill the first block; a body that fits goes up in one request.
        let mut block = BytesMut::with_capacity(BLOCK_SIZE.min(1 << 20));
        let mut ended = false;
        while block.len() < BLOCK_SIZE {
            match body.next().await {
                Some(chunk) => block.extend_from_slice(&chunk.map_err(read_err)?),
                None => {
                    ended = true;
                    break;
                }
            }
        }
        let result = if ended {
            let mut req = client.put_block_blob(block.freeze()).metadata(metadata);
            if let Some(ct) = content_type {
                req = req.content_type(ct);
            }
            if let Some(c) = condition {
                req = req.if_match(c);
            }
            req.await.map(|_| ())
        } else {
            let mut ids: Vec<BlobBlockType> = Vec::new();
            let mut in_flight = FuturesUnordered::new();
            let mut carry = block;
            let mut done = false;
            while !done || !carry.is_empty() {
                // Cut full blocks off the buffer; read more when short.
                while !done && carry.len() < BLOCK_SIZE {
                    match body.next().await {
                        Some(chunk) => carry.extend_from_slice(&chunk.map_err(read_err)?),
                        None => done = true,
                    }
                }
                let take = carry.len().min(BLOCK_SIZE);
                let part: Bytes = carry.split_to(take).freeze();
                let id = format!("{:032}", ids.len());
                ids.push(BlobBlockType::new_uncommitted(id.clone().into_bytes()));
                in_flight.push(client.put_block(id.into_bytes(), part).into_future());
                if in_flight.len() >= PARALLEL_BLOCKS {
                    if let Some(r) = in_flight.next().await {
                        r.map_err(|e| self.err(e, "cannot upload a block"))?;
                    }
                }
            }
            while let Some(r) = in_flight.next().await {
                r.map_err(|e| self.err(e, "cannot upload a block"))?;
            }
            let mut req = client
                .put_block_list(BlockList { blocks: ids })
                .metadata(metadata);
            if let Some(ct) = content_type {
                req = req.content_type(ct);
            }
            if let Some(c) = condition {
                req = req.if_match(c);
            }
            req.await.map(|_| ())
        };
        match result {
            Ok(_) => {
                // The response has no size or metadata: read them back.
                self.head_inner(key).await?.ok_or_else(|| {
                    Error::backend(
                        &self.name,
                        "",
                        format!("blob {key:?} was written but is not there"),
                    )
                })
            }
            Err(e) if matches!(status(&e), Some(409) | Some(412)) => {
                Err(self.conflict(key, &options.condition).await)
            }
            Err(e) => Err(self.err(e, "cannot write a blob")),
        }
    }
}

fn status(e: &azure_core_021::Error) -> Option<u16> {
    match e.kind() {
        ErrorKind::HttpResponse { status, .. } => Some(u16::from(*status)),
        _ => None,
    }
}

fn to_chrono(t: time::OffsetDateTime) -> DateTime<Utc> {
    DateTime::from_timestamp(t.unix_timestamp(), t.nanosecond()).unwrap_or_default()
}

fn meta_of(key: &str, b: &azure_storage_blobs::blob::Blob) -> BlobMeta {
    BlobMeta {
        key: key.into(),
        size: b.properties.content_length,
        etag: b.properties.etag.to_string(),
        content_type: Some(b.properties.content_type.clone()).filter(|c| !c.is_empty()),
        metadata: b.metadata.clone().unwrap_or_default().into_iter().collect(),
        last_modified: to_chrono(b.properties.last_modified),
    }
}

#[async_trait]
impl BlobStore for AzBlobStore {
    async fn put(&self, key: &str, body: ByteStream, options: PutOptions) -> Result<BlobMeta> {
        check_key(&self.name, key)?;
        check_metadata(&self.name, &options.metadata)?;
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
        let client = self.blob(key);
        let etag = meta.etag.clone();
        let name = self.name.clone();
        let secrets = self.secrets.clone();
        let body = futures::stream::try_unfold(start, move |at| {
            let client = client.clone();
            let etag = etag.clone();
            let name = name.clone();
            let secrets = secrets.clone();
            async move {
                if at >= end {
                    return Ok(None);
                }
                let stop = (at + GET_CHUNK).min(end);
                let mut pages = client
                    .get()
                    .range(at..stop)
                    .chunk_size(GET_CHUNK)
                    .if_match(IfMatchCondition::Match(etag))
                    .into_stream();
                let fail = |what: String| {
                    let mut m = what;
                    for s in &secrets {
                        if !s.is_empty() {
                            m = m.replace(s.as_str(), "***");
                        }
                    }
                    m
                };
                let Some(page) = pages.next().await else {
                    return Err(Error::backend(&name, "", "the service returned no data"));
                };
                let page = page.map_err(|e| match status(&e) {
                    Some(412) => Error::backend(
                        &name,
                        "",
                        "the blob changed while it was being read; read it again",
                    ),
                    _ if matches!(e.kind(), ErrorKind::Io) => {
                        Error::unavailable(&name, "", fail(format!("cannot read a blob: {e}")))
                    }
                    _ => Error::backend(&name, "", fail(format!("cannot read a blob: {e}"))),
                })?;
                let data = page.data.collect().await.map_err(|e| {
                    Error::unavailable(&name, "", fail(format!("cannot read a blob: {e}")))
                })?;
                Ok(Some((data, at + (stop - at))))
            }
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
        let limit = options.limit.unwrap_or(5000).clamp(1, 5000) as u32;
        let mut req = self
            .container
            .list_blobs()
            .include_metadata(true)
            .max_results(NonZeroU32::new(limit).unwrap_or(NonZeroU32::MIN));
        if !options.prefix.is_empty() {
            req = req.prefix(options.prefix.clone());
        }
        if let Some(d) = options.delimiter.as_ref().filter(|d| !d.is_empty()) {
            req = req.delimiter(d.clone());
        }
        if let Some(c) = &options.continuation {
            req = req.marker(NextMarker::new(c.clone()));
        }
        let mut pages = req.into_stream();
        let Some(page) = pages.next().await else {
            return Ok(ListPage {
                blobs: Vec::new(),
                prefixes: Vec::new(),
                continuation: None,
            });
        };
        let page = page.map_err(|e| self.err(e, "cannot list blobs"))?;
        Ok(ListPage {
            blobs: page.blobs.blobs().map(|b| meta_of(&b.name, b)).collect(),
            prefixes: page.blobs.prefixes().map(|p| p.name.clone()).collect(),
            continuation: page.next_marker.map(|m| m.as_str().to_string()),
        })
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        check_key(&self.name, key)?;
        match self.blob(key).delete().await {
            Ok(_) => Ok(true),
            Err(e) if status(&e) == Some(404) => Ok(false),
            Err(e) => Err(self.err(e, "cannot delete a blob")),
        }
    }

    async fn copy(&self, from: &str, to: &str) -> Result<BlobMeta> {
        check_key(&self.name, from)?;
        check_key(&self.name, to)?;
        let source = self
            .blob(from)
            .url()
            .map_err(|e| self.err(e, "cannot build the source URL"))?;
        let r = match self.blob(to).copy(source).await {
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
        let mut status_now = r.copy_status;
        for _ in 0..600 {
            if status_now != CopyStatus::Pending {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            status_now = match self.blob(to).get_properties().await {
                Ok(p) => p.blob.properties.copy_status.unwrap_or(CopyStatus::Success),
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
        self.sign_until(key, time::OffsetDateTime::now_utc() + expires_in)
            .await
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
            .get_properties()
            .await
            .map(|_| ())
            .map_err(|e| self.err(e, "cannot read the container"))
    }

    fn as_blob(&self) -> Option<&dyn BlobStore> {
        Some(self)
    }
}
