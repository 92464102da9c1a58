//! Which account, endpoint and credentials an `azblob` config names: the
//! connection string (incl. `UseDevelopmentStorage=true`), or `account`
//! with `key` or `sas_token`. The official SDK parses none of these (it
//! takes a URL and an Entra ID token), so this is the one place that does.

use std::collections::BTreeMap;

use azure_core::credentials::Secret;

use super::config::{AzBlobConfig, DEV_ACCOUNT, DEV_KEY};

/// How requests are authorized.
#[derive(Debug, Clone)]
pub(super) enum Auth {
    /// Shared key: every request signed with the account key (which can
    /// also sign URLs).
    Key(Secret),
    /// A SAS query string (without `?`), appended to every request URL.
    Sas(Secret),
}

/// A config resolved to what the store talks to.
#[derive(Debug)]
pub(super) struct Resolved {
    pub account: String,
    /// The blob endpoint, without a trailing `/`.
    pub endpoint: String,
    pub auth: Auth,
    /// Strings that must never appear in an error or a log line: the
    /// key, the SAS token and its signature.
    pub secrets: Vec<String>,
}

/// Resolves the credentials of `cfg`; the error says which options to set
/// and never quotes a secret.
pub(super) fn resolve(cfg: &AzBlobConfig) -> Result<Resolved, String> {
    if let Some(cs) = &cfg.connection_string {
        if cfg.key.is_some() || cfg.sas_token.is_some() || cfg.account.is_some() {
            return Err(
                "set either `connection_string` or `account` with `key` / `sas_token`, not both"
                    .into(),
            );
        }
        return from_connection_string(cs.expose());
    }
    let Some(account) = cfg.account.clone() else {
        return Err("set `connection_string`, or `account` with `key` or `sas_token`".into());
    };
    let auth = match (&cfg.key, &cfg.sas_token) {
        (Some(key), None) => key_auth(key.expose())?,
        (None, Some(sas)) => sas_auth(sas.expose())?,
        (Some(_), Some(_)) => return Err("set `key` or `sas_token`, not both".into()),
        (None, None) => return Err(format!("account `{account}` needs `key` or `sas_token`")),
    };
    let endpoint = cfg
        .endpoint
        .clone()
        .map(|e| e.trim_end_matches('/').to_string())
        .unwrap_or_else(|| format!("https://{account}.blob.core.windows.net"));
    Ok(resolved(account, endpoint, auth))
}

fn resolved(account: String, endpoint: String, auth: Auth) -> Resolved {
    let secret = match &auth {
        Auth::Key(k) | Auth::Sas(k) => k.secret().to_string(),
    };
    let mut secrets = vec![secret.clone()];
    // The signature as written, and percent-decoded (as a log of the
    // request's query pairs would show it).
    secrets.extend(sig_of(&secret));
    secrets.extend(decoded_sig_of(&secret));
    Resolved {
        account,
        endpoint,
        auth,
        secrets,
    }
}

fn key_auth(key: &str) -> Result<Auth, String> {
    use base64::Engine;
    if base64::engine::general_purpose::STANDARD
        .decode(key)
        .map_or(true, |k| k.is_empty())
    {
        return Err("`key` is not an account key (base64, as the portal shows it)".into());
    }
    Ok(Auth::Key(Secret::new(key.to_string())))
}

fn sas_auth(sas: &str) -> Result<Auth, String> {
    let sas = sas.trim_start_matches('?');
    if sig_of(sas).is_none() || !sas.split('&').any(|p| p.starts_with("sv=")) {
        return Err("`sas_token` is not a SAS query string (`sv=…&sig=…`)".into());
    }
    Ok(Auth::Sas(Secret::new(sas.to_string())))
}

/// Parses `Key=Value;…` (keys case-insensitive, values may contain `=`).
fn from_connection_string(cs: &str) -> Result<Resolved, String> {
    let mut parts: BTreeMap<String, &str> = BTreeMap::new();
    for part in cs.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((k, v)) = part.split_once('=') else {
            return Err("`connection_string` is not a storage connection string (`AccountName=…;AccountKey=…;BlobEndpoint=…`)".into());
        };
        parts.insert(k.trim().to_ascii_lowercase(), v.trim());
    }
    let get = |k: &str| parts.get(k).copied().filter(|v| !v.is_empty());
    let dev = get("usedevelopmentstorage").is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let auth = match (get("accountkey"), get("sharedaccesssignature")) {
        (Some(key), None) => key_auth(key)?,
        (None, Some(sas)) => sas_auth(sas)?,
        (Some(_), Some(_)) => {
            return Err(
                "`connection_string` has both `AccountKey` and `SharedAccessSignature`; keep one"
                    .into(),
            );
        }
        // `UseDevelopmentStorage=true` alone means Azurite's well-known key.
        (None, None) if dev => Auth::Key(Secret::new(DEV_KEY)),
        (None, None) => {
            return Err(
                "`connection_string` has neither `AccountKey` nor `SharedAccessSignature`".into(),
            );
        }
    };
    // The account name signs shared-key requests; a SAS needs none.
    let account = match (get("accountname"), dev, &auth) {
        (Some(a), _, _) => a.to_string(),
        (None, true, _) => DEV_ACCOUNT.to_string(),
        (None, false, Auth::Sas(_)) if get("blobendpoint").is_some() => String::new(),
        (None, false, _) => return Err("`connection_string` has no `AccountName`".into()),
    };
    let endpoint = match (get("blobendpoint"), dev) {
        (Some(e), _) => e.trim_end_matches('/').to_string(),
        (None, true) => format!("http://127.0.0.1:10000/{DEV_ACCOUNT}"),
        (None, false) => {
            let proto = match get("defaultendpointsprotocol") {
                Some(p) if p.eq_ignore_ascii_case("http") => "http",
                _ => "https",
            };
            let suffix = get("endpointsuffix").unwrap_or("core.windows.net");
            format!("{proto}://{account}.blob.{suffix}")
        }
    };
    Ok(resolved(account, endpoint, auth))
}

/// The SAS signature (`sig=…`) of a token, which is what must stay hidden.
fn sig_of(secret: &str) -> Option<String> {
    secret
        .split(['&', ';', '?'])
        .find_map(|p| p.strip_prefix("sig="))
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// The SAS signature of a token, percent-decoded.
fn decoded_sig_of(secret: &str) -> Option<String> {
    let url = azure_core::http::Url::parse(&format!("http://sas.invalid/?{secret}")).ok()?;
    url.query_pairs()
        .find(|(k, _)| k == "sig")
        .map(|(_, v)| v.into_owned())
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret as ConfigSecret;

    fn cs(text: &str) -> AzBlobConfig {
        AzBlobConfig {
            connection_string: Some(ConfigSecret::new(text)),
            account: None,
            key: None,
            ..AzBlobConfig::dev("c1c", "http://unused")
        }
    }

    #[test]
    fn connection_strings_resolve() {
        let r = resolve(&cs("UseDevelopmentStorage=true")).unwrap();
        assert_eq!(r.account, DEV_ACCOUNT);
        assert_eq!(r.endpoint, "http://127.0.0.1:10000/devstoreaccount1");
        assert!(matches!(&r.auth, Auth::Key(k) if k.secret() == DEV_KEY));
        let r = resolve(&cs(
            "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=a2V5a2V5;EndpointSuffix=core.chinacloudapi.cn",
        ))
        .unwrap();
        assert_eq!(r.endpoint, "https://acct.blob.core.chinacloudapi.cn");
        assert!(r.secrets.contains(&"a2V5a2V5".to_string()));
        let r = resolve(&cs(
            "BlobEndpoint=https://x.example/;SharedAccessSignature=sv=2022-11-02&ss=b&sig=ab%2Bc%3D",
        ))
        .unwrap();
        assert_eq!(r.endpoint, "https://x.example");
        assert!(matches!(r.auth, Auth::Sas(_)));
        assert!(r.secrets.contains(&"ab%2Bc%3D".to_string()));
        assert!(r.secrets.contains(&"ab+c=".to_string()));
    }

    #[test]
    fn bad_connection_strings_say_what_is_missing_without_secrets() {
        for (text, needle) in [
            ("AccountName=a", "neither `AccountKey`"),
            ("AccountKey=a2V5;", "no `AccountName`"),
            ("garbage", "not a storage connection string"),
            (
                "AccountName=a;AccountKey=!!notbase64!!",
                "not an account key",
            ),
            (
                "AccountName=a;SharedAccessSignature=sv=1&secretbits",
                "not a SAS",
            ),
        ] {
            let e = resolve(&cs(text)).unwrap_err();
            assert!(e.contains(needle), "{text}: {e}");
            assert!(!e.contains("secretbits") && !e.contains("notbase64"), "{e}");
        }
    }
}
