//! List Blobs with a delimiter.
//!
//! `azure_storage_blob` 1.1 lists flat only (its `list_blobs` has no
//! `delimiter`; the hierarchical listing of 1.1.0-beta.1 was removed before
//! 1.1.0). Rolling prefixes up on the client would read every blob under a
//! rolled-up prefix to skip it, so this sends the documented List Blobs
//! request itself, through an `azure_core` pipeline with the same policies
//! as the SDK's clients (auth, retry, sanitized logging, one transport), and
//! reads each blob into the SDK's own `BlobItem` model. One code path for
//! listings with and without a delimiter.

use azure_core::error::CheckSuccessOptions;
use azure_core::http::{
    ClientOptions, Context, Method, Pipeline, PipelineSendOptions, Request, Url,
};
use azure_storage_blob::models::{BlobItem, BlobName};
use serde::Deserialize;

use crate::store::blob::ListOptions;

/// A pipeline for the requests the SDK has no method for.
pub(super) fn pipeline(options: ClientOptions) -> Pipeline {
    Pipeline::new(
        Some("polyrouter-azblob"),
        Some(env!("CARGO_PKG_VERSION")),
        options,
        Vec::new(),
        Vec::new(),
        None,
    )
}

/// `<EnumerationResults>` of List Blobs, with `Blob` and `BlobPrefix`
/// entries in key order.
#[derive(Debug, Deserialize)]
struct EnumerationResults {
    #[serde(rename = "Blobs", default)]
    blobs: Entries,
    #[serde(rename = "NextMarker", default)]
    next_marker: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct Entries {
    #[serde(rename = "$value", default)]
    entries: Vec<Entry>,
}

#[derive(Debug, Deserialize)]
enum Entry {
    Blob(Box<BlobItem>),
    BlobPrefix(Prefix),
}

#[derive(Debug, Deserialize)]
struct Prefix {
    #[serde(rename = "Name")]
    name: BlobName,
}

/// A name as the service lists it: percent-encoded when `Encoded="true"`
/// (names with characters XML cannot carry).
fn decoded(name: BlobName) -> azure_core::Result<String> {
    let content = name.content.unwrap_or_default();
    if !name.encoded.unwrap_or_default() {
        return Ok(content);
    }
    percent_encoding::percent_decode_str(&content)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|e| {
            azure_core::Error::with_message(
                azure_core::error::ErrorKind::DataConversion,
                format!("a listed prefix is not UTF-8 once decoded: {e}"),
            )
        })
}

/// One page: the blobs, the rolled-up prefixes and the next marker.
pub(super) struct RawPage {
    pub blobs: Vec<BlobItem>,
    pub prefixes: Vec<String>,
    pub next_marker: Option<String>,
}

/// Sends one List Blobs request for `container_url` (which carries a SAS
/// when the store authenticates with one).
pub(super) async fn list_page(
    pipeline: &Pipeline,
    container_url: &Url,
    version: &str,
    options: &ListOptions,
) -> azure_core::Result<RawPage> {
    let limit = options.limit.unwrap_or(5000).clamp(1, 5000);
    let mut url = container_url.clone();
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("restype", "container")
            .append_pair("comp", "list")
            .append_pair("include", "metadata")
            .append_pair("maxresults", &limit.to_string());
        if !options.prefix.is_empty() {
            q.append_pair("prefix", &options.prefix);
        }
        if let Some(d) = options.delimiter.as_deref().filter(|d| !d.is_empty()) {
            q.append_pair("delimiter", d);
        }
        if let Some(marker) = &options.continuation {
            q.append_pair("marker", marker);
        }
    }
    let mut request = Request::new(url, Method::Get);
    request.insert_header("accept", "application/xml");
    request.insert_header("x-ms-version", version.to_string());
    let response = pipeline
        .send(
            &Context::new(),
            &mut request,
            Some(PipelineSendOptions {
                check_success: CheckSuccessOptions {
                    success_codes: &[200],
                },
                ..Default::default()
            }),
        )
        .await?;
    let (_, _, body) = response.deconstruct();
    let results: EnumerationResults = azure_core::xml::from_xml(&body)?;
    let mut page = RawPage {
        blobs: Vec::new(),
        prefixes: Vec::new(),
        next_marker: results.next_marker.filter(|m| !m.is_empty()),
    };
    for entry in results.blobs.entries {
        match entry {
            Entry::Blob(b) => page.blobs.push(*b),
            Entry::BlobPrefix(p) => page.prefixes.push(decoded(p.name)?),
        }
    }
    Ok(page)
}
