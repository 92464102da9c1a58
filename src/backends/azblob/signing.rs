//! Shared-key request signing and service-SAS URLs with the account key.
//!
//! The official SDK (`azure_storage_blob` 1.x) authenticates with Entra ID
//! tokens or a SAS already in the URL, and signs only user-delegation SAS;
//! account keys — what connection strings and Azurite use — are not built
//! in. Both algorithms are short and specified by Azure ("Authorize with
//! Shared Key", "Create a service SAS"); the HMAC is `azure_core`'s own
//! `hmac_sha256`. Azurite verifies both signatures, so the behaviour suite
//! and the unit tests exercise them for real.

use std::sync::Arc;

use async_trait::async_trait;
use azure_core::credentials::Secret;
use azure_core::hmac::hmac_sha256;
use azure_core::http::policies::{Policy, PolicyResult};
use azure_core::http::{Context, Request, Url};
use azure_core::time::{OffsetDateTime, to_rfc7231};

/// The service version of the SAS we sign (`sv=`).
const SAS_VERSION: &str = "2022-11-02";

/// Signs every request with the account key: adds `x-ms-date` and
/// `Authorization: SharedKey account:signature`. It runs per try (a retry
/// gets a fresh date), after every other header is set. Its `Debug` shows
/// no key.
#[derive(Debug)]
pub(super) struct SharedKeyPolicy {
    account: String,
    key: Secret,
}

impl SharedKeyPolicy {
    pub(super) fn new(account: &str, key: Secret) -> Self {
        SharedKeyPolicy {
            account: account.to_string(),
            key,
        }
    }
}

#[async_trait]
impl Policy for SharedKeyPolicy {
    async fn send(
        &self,
        ctx: &Context,
        request: &mut Request,
        next: &[Arc<dyn Policy>],
    ) -> PolicyResult {
        request.insert_header("x-ms-date", to_rfc7231(&OffsetDateTime::now_utc()));
        let signature = hmac_sha256(&string_to_sign(&self.account, request), &self.key)?;
        request.insert_header(
            "authorization",
            format!("SharedKey {}:{signature}", self.account),
        );
        next[0].send(ctx, request, &next[1..]).await
    }
}

/// The Blob service's shared-key string to sign (versions 2015-02-21 on).
fn string_to_sign(account: &str, request: &Request) -> String {
    let headers = request.headers();
    let header = |name: &'static str| {
        headers
            .get_optional_str(&name.into())
            .unwrap_or_default()
            .to_string()
    };
    // Content-Length: the header, else the body's; empty when zero.
    let length = match headers.get_optional_str(&"content-length".into()) {
        Some(l) => l.to_string(),
        None => request.body().len().unwrap_or(0).to_string(),
    };
    let length = if length == "0" { String::new() } else { length };
    let mut ms: Vec<(String, String)> = headers
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_ascii_lowercase(),
                v.as_str().trim().to_string(),
            )
        })
        .filter(|(n, _)| n.starts_with("x-ms-"))
        .collect();
    ms.sort();
    let mut out = [
        request.method().as_ref().to_string(),
        header("content-encoding"),
        header("content-language"),
        length,
        header("content-md5"),
        header("content-type"),
        String::new(), // Date: x-ms-date is used instead
        header("if-modified-since"),
        header("if-match"),
        header("if-none-match"),
        header("if-unmodified-since"),
        header("range"),
    ]
    .join("\n");
    out.push('\n');
    for (name, value) in ms {
        out.push_str(&format!("{name}:{value}\n"));
    }
    out.push_str(&canonicalized_resource(account, request.url()));
    out
}

/// `/account/path` then each query parameter as `\nname:v1,v2` (names
/// lowercase and sorted, values decoded and sorted).
fn canonicalized_resource(account: &str, url: &Url) -> String {
    let mut out = format!("/{account}{}", url.path());
    let mut params: Vec<(String, Vec<String>)> = Vec::new();
    for (k, v) in url.query_pairs() {
        let k = k.to_ascii_lowercase();
        match params.iter_mut().find(|(n, _)| *n == k) {
            Some((_, vs)) => vs.push(v.into_owned()),
            None => params.push((k, vec![v.into_owned()])),
        }
    }
    params.sort();
    for (name, mut values) in params {
        values.sort();
        out.push_str(&format!("\n{name}:{}", values.join(",")));
    }
    out
}

/// A read-only service SAS for one blob (`sp=r`, `sr=b`), valid until
/// `expiry` (whole seconds, UTC), signed with the account key: the query
/// string to put on the blob's URL.
pub(super) fn read_sas(
    account: &str,
    key: &Secret,
    container: &str,
    blob: &str,
    expiry: OffsetDateTime,
) -> azure_core::Result<String> {
    service_sas(
        key,
        &format!("/blob/{account}/{container}/{blob}"),
        "b",
        "r",
        expiry,
    )
}

/// A service SAS for `resource` (`/blob/account/container[/blob]`) of kind
/// `sr` (`b` blob, `c` container) with permissions `sp`, until `expiry`.
pub(super) fn service_sas(
    key: &Secret,
    resource: &str,
    sr: &str,
    sp: &str,
    expiry: OffsetDateTime,
) -> azure_core::Result<String> {
    let expiry = rfc3339_seconds(expiry);
    // Fields in the order "Create a service SAS" gives for 2020-12-06 on.
    let to_sign = [
        sp,          // signedPermissions
        "",          // signedStart
        &expiry,     // signedExpiry
        resource,    // canonicalizedResource
        "",          // signedIdentifier
        "",          // signedIP
        "",          // signedProtocol
        SAS_VERSION, // signedVersion
        sr,          // signedResource
        "",          // signedSnapshotTime
        "",          // signedEncryptionScope
        "",          // rscc
        "",          // rscd
        "",          // rsce
        "",          // rscl
        "",          // rsct
    ]
    .join("\n");
    let sig = hmac_sha256(&to_sign, key)?;
    let mut url = Url::parse("http://sas.invalid/").expect("a constant URL");
    url.query_pairs_mut()
        .append_pair("sv", SAS_VERSION)
        .append_pair("sp", sp)
        .append_pair("sr", sr)
        .append_pair("se", &expiry)
        .append_pair("sig", &sig);
    Ok(url.query().unwrap_or_default().to_string())
}

/// `2026-01-02T03:04:05Z`: what the service canonicalizes a SAS time to.
pub(super) fn rfc3339_seconds(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use azure_core::http::Method;

    #[test]
    fn the_string_to_sign_follows_the_spec() {
        let url = Url::parse(
            "http://127.0.0.1:10000/devstoreaccount1/c/a%20b?comp=block&blockid=QQ%3D%3D&comp=x",
        )
        .unwrap();
        let mut r = Request::new(url, Method::Put);
        r.insert_header("x-ms-version", "2026-02-06");
        r.insert_header("x-ms-meta-b", " two ");
        r.insert_header("x-ms-meta-a", "one");
        r.insert_header("content-type", "text/plain");
        r.insert_header("if-match", "\"0x1\"");
        r.set_body(bytes::Bytes::from_static(b"hello"));
        let s = string_to_sign("devstoreaccount1", &r);
        assert_eq!(
            s,
            "PUT\n\n\n5\n\ntext/plain\n\n\n\"0x1\"\n\n\n\nx-ms-meta-a:one\nx-ms-meta-b:two\nx-ms-version:2026-02-06\n/devstoreaccount1/devstoreaccount1/c/a%20b\nblockid:QQ==\ncomp:block,x"
        );
    }

    #[test]
    fn a_sas_carries_whole_seconds_and_the_fields_it_signed() {
        let key = Secret::new(super::super::DEV_KEY);
        let t = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()
            + azure_core::time::Duration::milliseconds(999);
        let q = read_sas("acct", &key, "c", "a/b.png", t).unwrap();
        assert!(
            q.starts_with("sv=2022-11-02&sp=r&sr=b&se=2027-01-15T08%3A00%3A00Z&sig="),
            "{q}"
        );
    }
}
