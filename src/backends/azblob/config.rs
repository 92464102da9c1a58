//! `[stores.NAME]` options of an `azblob` store.

use std::fmt;

use serde::Deserialize;

use crate::config::Secret;

/// Azurite's well-known development account (public, documented by Microsoft).
pub const DEV_ACCOUNT: &str = "devstoreaccount1";
/// Azurite's well-known development account key (public, documented by Microsoft).
pub const DEV_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// Options of an `azblob` store, as read from `[stores.NAME]`.
///
/// Credentials: `connection_string`, or `account` + `key`, or `account` +
/// `sas_token`. `key`, `sas_token` and `connection_string` are secrets:
/// never shown in `Debug`, logs or errors.
///
/// ```
/// use polyrouter::backends::azblob::AzBlobConfig;
/// let c = AzBlobConfig::dev("images", "http://127.0.0.1:10000/devstoreaccount1");
/// assert_eq!(c.account.as_deref(), Some("devstoreaccount1"));
/// assert!(!format!("{c:?}").contains("Eby8"));
/// ```
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AzBlobConfig {
    /// The container the blobs live in.
    pub container: String,
    /// Create the container at start-up when missing (default `false`: a
    /// missing container is a configuration error).
    #[serde(default)]
    pub create_if_missing: bool,
    /// `DefaultEndpointsProtocol=…;AccountName=…;AccountKey=…;BlobEndpoint=…`
    /// (or with `SharedAccessSignature=…`).
    pub connection_string: Option<Secret>,
    /// The storage account name.
    pub account: Option<String>,
    /// The account key (base64), for shared-key signing.
    pub key: Option<Secret>,
    /// A SAS token (`sv=…&sig=…`), instead of a key.
    pub sas_token: Option<Secret>,
    /// The blob endpoint, e.g. `http://127.0.0.1:10000/devstoreaccount1` for
    /// Azurite; default `https://{account}.blob.core.windows.net`.
    pub endpoint: Option<String>,
    /// Retries of a failed request (connection errors, 5xx, 429) before
    /// the call fails with `Unavailable` (default 3).
    #[serde(default = "default_retries")]
    pub max_retries: u32,
    /// Bytes per staged block of a streamed put, from 64 KiB to 256 MiB
    /// (default 4 MiB). A body up to one block goes up in one request;
    /// a put buffers at most [`PARALLEL_BLOCKS`](super::PARALLEL_BLOCKS)
    /// blocks.
    #[serde(default = "default_block_size")]
    pub block_size: u64,
}

fn default_retries() -> u32 {
    3
}

fn default_block_size() -> u64 {
    4 << 20
}

/// The smallest `block_size` (64 KiB).
pub const MIN_BLOCK_SIZE: u64 = 64 << 10;
/// The largest `block_size` (256 MiB).
pub const MAX_BLOCK_SIZE: u64 = 256 << 20;

impl AzBlobConfig {
    /// Azurite's development account on `endpoint`, for `container`
    /// (created when missing).
    ///
    /// ```
    /// let c = polyrouter::backends::azblob::AzBlobConfig::dev("c", "http://127.0.0.1:10000/devstoreaccount1");
    /// assert!(c.create_if_missing);
    /// ```
    pub fn dev(container: &str, endpoint: &str) -> Self {
        AzBlobConfig {
            container: container.into(),
            create_if_missing: true,
            connection_string: None,
            account: Some(DEV_ACCOUNT.into()),
            key: Some(Secret::new(DEV_KEY)),
            sas_token: None,
            endpoint: Some(endpoint.into()),
            max_retries: default_retries(),
            block_size: default_block_size(),
        }
    }

    /// Checks `block_size` is within [`MIN_BLOCK_SIZE`]..=[`MAX_BLOCK_SIZE`].
    ///
    /// ```
    /// let mut c = polyrouter::backends::azblob::AzBlobConfig::dev("c", "http://127.0.0.1:10000/devstoreaccount1");
    /// assert!(c.check_block_size().is_ok());
    /// c.block_size = 1;
    /// assert!(c.check_block_size().unwrap_err().contains("block_size"));
    /// ```
    pub fn check_block_size(&self) -> Result<(), String> {
        if (MIN_BLOCK_SIZE..=MAX_BLOCK_SIZE).contains(&self.block_size) {
            return Ok(());
        }
        Err(format!(
            "`block_size` = {} is out of range: use {MIN_BLOCK_SIZE} (64 KiB) to {MAX_BLOCK_SIZE} (256 MiB) bytes",
            self.block_size
        ))
    }
}

impl fmt::Debug for AzBlobConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hidden = |s: &Option<Secret>| s.as_ref().map(|_| "***");
        f.debug_struct("AzBlobConfig")
            .field("container", &self.container)
            .field("create_if_missing", &self.create_if_missing)
            .field("connection_string", &hidden(&self.connection_string))
            .field("account", &self.account)
            .field("key", &hidden(&self.key))
            .field("sas_token", &hidden(&self.sas_token))
            .field("endpoint", &self.endpoint)
            .field("max_retries", &self.max_retries)
            .field("block_size", &self.block_size)
            .finish()
    }
}

/// Checks an Azure container name: 3–63 characters of lowercase letters,
/// digits and single hyphens, starting and ending with a letter or digit.
pub(super) fn check_container(name: &str) -> Result<(), String> {
    let ok = (3..=63).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-')
        && !name.contains("--");
    if ok {
        Ok(())
    } else {
        Err(format!(
            "container name {name:?} is not valid in Azure: use 3-63 lowercase letters, digits and single hyphens"
        ))
    }
}
