//! `azblob`-specific tests against Azurite (the shared blob behaviours are
//! in tests/behavior/blob.rs). Azurite must answer on
//! `POLYROUTER_TEST_AZBLOB_URL` (default `http://127.0.0.1:10000/devstoreaccount1`;
//! `scripts/emulators/start` starts it): these tests fail, not skip, without it.

use super::*;
use crate::store::blob::stream_of;

fn endpoint() -> String {
    std::env::var("POLYROUTER_TEST_AZBLOB_URL")
        .unwrap_or_else(|_| format!("http://127.0.0.1:10000/{DEV_ACCOUNT}"))
}

fn container(tag: &str) -> String {
    format!("pr-unit-{tag}-{}", std::process::id())
}

/// A wrong key: same length and alphabet, other bytes.
const WRONG_KEY: &str =
    "AAAAvdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

#[tokio::test]
async fn round_trip_and_clean_up() {
    let s = AzBlobStore::open("az", AzBlobConfig::dev(&container("rt"), &endpoint()))
        .await
        .unwrap();
    let m = s
        .put_bytes(
            "a/b c?.txt",
            b"hello".to_vec(),
            PutOptions::new().content_type("text/plain"),
        )
        .await
        .unwrap();
    assert_eq!(m.size, 5);
    assert_eq!(m.content_type, "text/plain");
    assert_eq!(s.get_bytes("a/b c?.txt").await.unwrap().unwrap(), b"hello");
    s.delete_container().await.unwrap();
    assert!(s.ping().await.is_err(), "the container is gone");
}

#[tokio::test]
async fn a_wrong_key_is_refused_by_the_service_and_never_shown() {
    // Create the container with the right key, then talk to it with a wrong one.
    let good = AzBlobStore::open("az", AzBlobConfig::dev(&container("key"), &endpoint()))
        .await
        .unwrap();
    let mut cfg = AzBlobConfig::dev(&container("key"), &endpoint());
    cfg.key = Some(crate::config::Secret::new(WRONG_KEY));
    cfg.create_if_missing = false;
    let e = AzBlobStore::open("az", cfg).await.unwrap_err();
    good.delete_container().await.unwrap();
    let text = e.to_string();
    assert!(matches!(e, Error::Backend { .. }), "{e:?}");
    assert!(
        text.contains("403") && text.contains("store `az`"),
        "{text}"
    );
    assert!(
        !text.contains("AAAAvdM0") && !format!("{e:?}").contains("AAAAvdM0"),
        "{text}"
    );
}

#[tokio::test]
async fn a_stopped_service_is_unavailable_naming_the_store_without_secrets() {
    // Nothing listens on port 9: what a stopped Azurite looks like.
    let cfg = AzBlobConfig {
        max_retries: 1,
        ..AzBlobConfig::dev("stopped", &format!("http://127.0.0.1:9/{DEV_ACCOUNT}"))
    };
    let e = AzBlobStore::open("images", cfg).await.unwrap_err();
    assert!(e.is_transient(), "{e:?}");
    let text = format!("{e} {e:?}");
    assert!(text.contains("store `images`"), "{text}");
    assert!(!text.contains(&DEV_KEY[..12]), "{text}");
}

#[tokio::test]
async fn a_connection_string_works_and_is_redacted() {
    let cs = format!(
        "DefaultEndpointsProtocol=http;AccountName={DEV_ACCOUNT};AccountKey={DEV_KEY};BlobEndpoint={};",
        endpoint()
    );
    let toml = format!(
        "[stores.img]\nkind = \"azblob\"\ncontainer = \"{}\"\ncreate_if_missing = true\nconnection_string = \"{cs}\"\n",
        container("cs")
    );
    let router = crate::Router::from_toml_str(&toml).await.unwrap();
    assert!(!format!("{:?}", router.config()).contains(&DEV_KEY[..12]));
    let blobs = router.blobs("img").unwrap();
    blobs
        .put_bytes("k", b"v".to_vec(), PutOptions::new())
        .await
        .unwrap();
    assert_eq!(blobs.get_bytes("k").await.unwrap().unwrap(), b"v");
    let store = router.store("img").unwrap();
    assert!(!store.location().contains(&DEV_KEY[..12]));
    AzBlobStore::open("img", AzBlobConfig::dev(&container("cs"), &endpoint()))
        .await
        .unwrap()
        .delete_container()
        .await
        .unwrap();
}

#[tokio::test]
async fn use_development_storage_alone_is_azurite_with_its_key() {
    // By definition this is Azurite on its default address, whatever
    // POLYROUTER_TEST_AZBLOB_URL says.
    let toml = format!(
        "[stores.img]\nkind = \"azblob\"\ncontainer = \"{}\"\ncreate_if_missing = true\nconnection_string = \"UseDevelopmentStorage=true\"\n",
        container("devcs")
    );
    let router = crate::Router::from_toml_str(&toml).await.unwrap();
    let blobs = router.blobs("img").unwrap();
    blobs
        .put_bytes("k", b"v".to_vec(), PutOptions::new())
        .await
        .unwrap();
    let url = blobs
        .signed_url("k", Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(http("GET", &url).await, (200, b"v".to_vec()));
    AzBlobStore::open(
        "img",
        AzBlobConfig::dev(
            &container("devcs"),
            &format!("http://127.0.0.1:10000/{DEV_ACCOUNT}"),
        ),
    )
    .await
    .unwrap()
    .delete_container()
    .await
    .unwrap();
}

#[tokio::test]
async fn a_missing_container_without_create_is_a_config_error() {
    let toml = format!(
        "[stores.img]\nkind = \"azblob\"\ncontainer = \"{}\"\naccount = \"{DEV_ACCOUNT}\"\nkey = \"{DEV_KEY}\"\nendpoint = \"{}\"\n",
        container("missing"),
        endpoint()
    );
    let e = crate::Router::from_toml_str(&toml).await.unwrap_err();
    assert!(matches!(e, Error::Config { .. }), "{e}");
    assert!(e.to_string().contains("does not exist"), "{e}");
    assert!(!e.to_string().contains(&DEV_KEY[..12]), "{e}");
}

#[tokio::test]
async fn bad_options_are_config_errors() {
    for (opts, needle) in [
        (
            "container = \"Bad_Name\"\naccount = \"a\"\nkey = \"k\"\n",
            "container name",
        ),
        ("container = \"ok-name\"\n", "connection_string"),
        ("container = \"ok-name\"\naccount = \"a\"\n", "needs `key`"),
        (
            "container = \"ok-name\"\naccount = \"a\"\nkey = \"a2V5\"\nendpoint = \"http://u:hunter2@127.0.0.1:10000/a\"\n",
            "must not carry credentials",
        ),
        (
            "container = \"ok-name\"\nconnection_string = \"AccountName=a;AccountKey=a2V5;BlobEndpoint=http://u:hunter2@127.0.0.1:10000/a\"\n",
            "must not carry credentials",
        ),
    ] {
        let toml = format!("[stores.img]\nkind = \"azblob\"\n{opts}");
        let e = crate::Router::from_toml_str(&toml).await.unwrap_err();
        assert!(matches!(e, Error::Config { .. }), "{e}");
        assert!(e.to_string().contains(needle), "{e}");
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }
}

#[tokio::test]
async fn a_big_body_goes_up_in_blocks_and_an_interrupted_one_leaves_nothing() {
    let s = AzBlobStore::open("az", AzBlobConfig::dev(&container("blocks"), &endpoint()))
        .await
        .unwrap();
    // 9 MiB + 1: three blocks.
    let data: Vec<u8> = (0..(9 << 20) + 1).map(|i| (i % 251) as u8).collect();
    let m = BlobStore::put(&s, "big", stream_of(data.clone()), PutOptions::new())
        .await
        .unwrap();
    assert_eq!(m.size, data.len() as u64);
    let part = BlobStore::get(
        &s,
        "big",
        Some(ByteRange::new(4 << 20, Some((4 << 20) + 10))),
    )
    .await
    .unwrap()
    .unwrap()
    .bytes()
    .await
    .unwrap();
    assert_eq!(part, &data[4 << 20..(4 << 20) + 10]);
    assert_eq!(s.get_bytes("big").await.unwrap().unwrap(), data);
    let body = futures::stream::iter(vec![
        Ok(Bytes::from(vec![7u8; 5 << 20])),
        Err(std::io::Error::other("client went away")),
    ])
    .boxed();
    let e = BlobStore::put(&s, "half", body, PutOptions::new())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("client went away"), "{e}");
    assert!(s.head("half").await.unwrap().is_none());
    s.delete_container().await.unwrap();
}

/// One plain HTTP/1.0 request (so the answer is never chunked) to an
/// `http://` URL: the status and the body. Nothing of the SDK is used, as
/// a browser fetching a signed URL would not use it either.
async fn http(method: &str, url: &str) -> (u16, Vec<u8>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://").expect("Azurite speaks http");
    let (host, path) = rest.split_at(rest.find('/').expect("a path"));
    let mut conn = tokio::net::TcpStream::connect(host).await.unwrap();
    let request = format!(
        "{method} {path} HTTP/1.0\r\nHost: {host}\r\nContent-Length: 0\r\nx-ms-blob-type: BlockBlob\r\n\r\n"
    );
    conn.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    conn.read_to_end(&mut answer).await.unwrap();
    let end = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("HTTP headers");
    let head = String::from_utf8_lossy(&answer[..end]).to_string();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    (status, answer[end + 4..].to_vec())
}

/// The value of query parameter `name` in `url` (or a bare query string), percent-decoded.
fn query_param(url: &str, name: &str) -> String {
    let q = url.split_once('?').map_or(url, |(_, q)| q);
    let raw = q
        .split('&')
        .find_map(|p| p.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no `{name}` in {url}"));
    let mut out = Vec::new();
    let b = raw.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            out.push(u8::from_str_radix(&raw[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(if b[i] == b'+' { b' ' } else { b[i] });
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

#[tokio::test]
async fn a_signed_url_reads_the_blob_over_plain_http_and_nothing_more() {
    let s = AzBlobStore::open("az", AzBlobConfig::dev(&container("sas"), &endpoint()))
        .await
        .unwrap();
    let key = "products/lamp 1?.png";
    let data: Vec<u8> = (0..70_000u32).map(|i| (i % 253) as u8).collect();
    s.put_bytes(
        key,
        data.clone(),
        PutOptions::new().content_type("image/png"),
    )
    .await
    .unwrap();

    let before = time::OffsetDateTime::now_utc().unix_timestamp();
    let url = s.signed_url(key, Duration::from_secs(600)).await.unwrap();
    let after = time::OffsetDateTime::now_utc().unix_timestamp();
    assert!(
        url.starts_with(&format!("{}/{}/", endpoint(), container("sas"))),
        "{url}"
    );
    // Read-only, one blob, expiring exactly `expires_in` after signing.
    assert_eq!(query_param(&url, "sp"), "r");
    assert_eq!(query_param(&url, "sr"), "b");
    let se = time::OffsetDateTime::parse(
        &query_param(&url, "se"),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap()
    .unix_timestamp();
    assert!(
        (before + 600..=after + 600).contains(&se),
        "se {se}, signed between {before} and {after}"
    );
    assert!(!url.contains(DEV_KEY), "the key never leaves the store");

    // A client with no credentials fetches the bytes.
    let (status, body) = http("GET", &url).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(body, data);

    // It cannot write with it, nor read another blob, nor list.
    s.put_bytes("products/other.png", b"x".to_vec(), PutOptions::new())
        .await
        .unwrap();
    let (status, _) = http("PUT", &url).await;
    assert_eq!(status, 403, "a read-only SAS must not allow writes");
    assert_eq!(s.get_bytes(key).await.unwrap().unwrap(), data, "unchanged");
    let other = url.replace("lamp%201%3F.png", "other.png");
    assert_ne!(other, url, "the key is percent-encoded in the path: {url}");
    let (status, _) = http("GET", &other).await;
    assert_eq!(status, 403, "the signature covers one blob only");

    // A tampered signature or widened permissions are refused.
    let at = url.find("sig=").unwrap() + 4;
    let mut tampered = url.clone();
    let c = if &url[at..at + 1] == "A" { "B" } else { "A" };
    tampered.replace_range(at..at + 1, c);
    assert_eq!(http("GET", &tampered).await.0, 403);
    let widened = url.replace("sp=r&", "sp=rw&");
    assert_ne!(widened, url);
    assert_eq!(http("GET", &widened).await.0, 403);

    // An expired URL is refused (signed for a minute ago: no sleeping).
    let expired = s
        .sign_until(
            key,
            time::OffsetDateTime::now_utc() - Duration::from_secs(60),
        )
        .unwrap();
    assert_eq!(http("GET", &expired).await.0, 403);

    // Signing needs no request: a missing blob gets a URL that answers 404.
    let missing = s
        .signed_url("products/none.png", Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(http("GET", &missing).await.0, 404);
    s.delete_container().await.unwrap();
}

#[tokio::test]
async fn signed_url_bounds_and_bad_keys_are_invalid_input() {
    let s = AzBlobStore::open("az", AzBlobConfig::dev(&container("sasb"), &endpoint()))
        .await
        .unwrap();
    for (key, expiry) in [
        ("a.png", Duration::ZERO),
        ("a.png", Duration::from_millis(999)),
        (
            "a.png",
            crate::store::blob::MAX_SIGNED_URL_EXPIRY + Duration::from_secs(1),
        ),
        ("../a.png", Duration::from_secs(60)),
    ] {
        let e = s.signed_url(key, expiry).await.unwrap_err();
        assert!(
            matches!(e, Error::InvalidInput { .. }),
            "{key} {expiry:?}: {e:?}"
        );
        assert!(e.to_string().contains("store `az`"), "{e}");
    }
    let url = s
        .signed_url("a.png", crate::store::blob::MAX_SIGNED_URL_EXPIRY)
        .await
        .unwrap();
    assert!(url.contains("sig="), "{url}");
    s.delete_container().await.unwrap();
}

/// An account SAS on Azurite's development account: blob service, every
/// resource type, permissions `sp`, valid ten minutes ("Create an account
/// SAS", version 2020-12-06 on).
fn account_sas(sp: &str) -> String {
    let se = signing::rfc3339_seconds(time::OffsetDateTime::now_utc() + Duration::from_secs(600));
    let version = "2022-11-02";
    let to_sign = format!("{DEV_ACCOUNT}\n{sp}\nb\nsco\n\n{se}\n\n\n{version}\n\n");
    let sig =
        azure_core::hmac::hmac_sha256(&to_sign, &azure_core::credentials::Secret::new(DEV_KEY))
            .unwrap();
    let mut url = Url::parse("http://sas.invalid/").unwrap();
    url.query_pairs_mut()
        .append_pair("sv", version)
        .append_pair("ss", "b")
        .append_pair("srt", "sco")
        .append_pair("sp", sp)
        .append_pair("se", &se)
        .append_pair("sig", &sig);
    url.query().unwrap().to_string()
}

#[tokio::test]
async fn a_store_on_a_sas_token_cannot_sign_and_says_so() {
    // An account SAS made with the account key (container level: enough to
    // open the store); the second store has only it.
    let owner = AzBlobStore::open("az", AzBlobConfig::dev(&container("sastok"), &endpoint()))
        .await
        .unwrap();
    let token = account_sas("rl");
    let cfg = AzBlobConfig {
        key: None,
        sas_token: Some(crate::config::Secret::new(token.as_str())),
        create_if_missing: false,
        ..AzBlobConfig::dev(&container("sastok"), &endpoint())
    };
    let s = AzBlobStore::open("shared", cfg).await.unwrap();
    s.ping().await.unwrap();
    let e = s
        .signed_url("a.png", Duration::from_secs(60))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Unsupported { .. }), "{e:?}");
    let text = e.to_string();
    assert!(
        text.contains("store `shared`") && text.contains("account key"),
        "{text}"
    );
    assert!(!text.contains(&query_param(&token, "sig")), "{text}");
    owner.delete_container().await.unwrap();
}

#[tokio::test]
async fn the_router_hands_out_signed_urls() {
    let toml = format!(
        "[stores.img]\nkind = \"azblob\"\ncontainer = \"{}\"\ncreate_if_missing = true\naccount = \"{DEV_ACCOUNT}\"\nkey = \"{DEV_KEY}\"\nendpoint = \"{}\"\n\n[stores.mem]\nkind = \"memory\"\n",
        container("router"),
        endpoint()
    );
    let router = crate::Router::from_toml_str(&toml).await.unwrap();
    let blobs = router.blobs("img").unwrap();
    blobs
        .put_bytes("k.txt", b"hello".to_vec(), PutOptions::new())
        .await
        .unwrap();
    let url = blobs
        .signed_url("k.txt", Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(http("GET", &url).await, (200, b"hello".to_vec()));
    let e = router
        .blobs("mem")
        .unwrap()
        .signed_url("k.txt", Duration::from_secs(30))
        .await
        .unwrap_err();
    assert!(
        matches!(e, Error::Unsupported { .. }) && e.to_string().contains("store `mem`"),
        "{e}"
    );
    AzBlobStore::open("img", AzBlobConfig::dev(&container("router"), &endpoint()))
        .await
        .unwrap()
        .delete_container()
        .await
        .unwrap();
}

/// Everything `tracing` and `log` say, at TRACE, while `scenario` runs,
/// as text. The subscriber is the process's global default (installed
/// once): a scoped one misses events whose callsites other tests' threads
/// registered first. Lines from tests running at the same time may be in
/// the text too; none of them may hold a secret either.
fn captured_logs(scenario: impl std::future::Future<Output = ()>) -> String {
    use std::sync::{Arc, Mutex, OnceLock};
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buffer {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    static BUFFER: OnceLock<Buffer> = OnceLock::new();
    let buffer = BUFFER.get_or_init(|| {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_global_default(subscriber)
            .expect("no other global tracing subscriber in the lib tests");
        // `log` records (reqwest, rustls, …) become `tracing` events.
        tracing_log::LogTracer::builder()
            .with_max_level(tracing_log::log::LevelFilter::Trace)
            .init()
            .expect("no other `log` logger in the lib tests");
        buffer
    });
    let start = buffer.0.lock().unwrap().len();
    tracing_log::log::trace!("log-sentinel");
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(scenario);
    let text = String::from_utf8_lossy(&buffer.0.lock().unwrap()[start..]).to_string();
    assert!(text.contains("log-sentinel"), "`log` records are captured");
    text
}

/// Every operation of a key-signed and of a SAS store, and failures, at
/// TRACE: the logs show the SDK's requests, but never the account key, the
/// SAS, a signature (`sig=` is always `REDACTED`) nor an `Authorization`
/// value.
#[test]
fn no_secret_reaches_the_logs_at_trace() {
    let sas = account_sas("rwdlc");
    let sas_sig = query_param(&sas, "sig");
    let signed = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let signed_in = signed.clone();
    let sas_in = sas.clone();
    let logs = captured_logs(async move {
        let cfg = AzBlobConfig {
            block_size: MIN_BLOCK_SIZE,
            ..AzBlobConfig::dev(&container("logs"), &endpoint())
        };
        let keyed = AzBlobStore::open("keyed", cfg).await.unwrap();
        let sas_cfg = AzBlobConfig {
            key: None,
            sas_token: Some(crate::config::Secret::new(sas_in.as_str())),
            create_if_missing: false,
            block_size: MIN_BLOCK_SIZE,
            ..AzBlobConfig::dev(&container("logs"), &endpoint())
        };
        let shared = AzBlobStore::open("shared", sas_cfg).await.unwrap();
        let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        for s in [&keyed, &shared] {
            let opts = PutOptions::new().content_type("text/plain").meta("m", "v");
            s.put_bytes("d/small", b"hello".to_vec(), opts)
                .await
                .unwrap();
            BlobStore::put(s, "d/big", stream_of(big.clone()), PutOptions::new())
                .await
                .unwrap();
            assert_eq!(s.get_bytes("d/big").await.unwrap().unwrap(), big);
            let part = BlobStore::get(s, "d/small", Some(ByteRange::new(1, Some(3))))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(part.bytes().await.unwrap(), b"el");
            assert!(s.head("d/small").await.unwrap().is_some());
            let page = s
                .list(&ListOptions::prefix("").delimiter("/"))
                .await
                .unwrap();
            assert_eq!(page.prefixes, vec!["d/".to_string()]);
            s.copy("d/small", "d/copy").await.unwrap();
            assert!(s.delete("d/copy").await.unwrap());
            let stale = PutOptions::new().condition(BlobCondition::IfMatch("\"0x1\"".into()));
            assert!(s.put_bytes("d/small", b"x".to_vec(), stale).await.is_err());
        }
        *signed_in.lock().unwrap() = keyed
            .signed_url("d/small", Duration::from_secs(60))
            .await
            .unwrap();
        assert!(
            shared
                .signed_url("d/small", Duration::from_secs(60))
                .await
                .is_err()
        );
        // A wrong key (403) and a stopped service (connection refused).
        let wrong = AzBlobConfig {
            key: Some(crate::config::Secret::new(WRONG_KEY)),
            create_if_missing: false,
            ..AzBlobConfig::dev(&container("logs"), &endpoint())
        };
        assert!(AzBlobStore::open("wrong", wrong).await.is_err());
        let stopped = AzBlobConfig {
            max_retries: 0,
            ..AzBlobConfig::dev("stopped", &format!("http://127.0.0.1:9/{DEV_ACCOUNT}"))
        };
        assert!(AzBlobStore::open("stopped", stopped).await.is_err());
        keyed.delete_container().await.unwrap();
    });
    let url_sig = query_param(&signed.lock().unwrap(), "sig");
    assert!(
        logs.contains("==> Request"),
        "the SDK's request logs are captured"
    );
    assert!(logs.contains("keyed") || logs.contains("devstoreaccount1"));
    for (what, secret) in [
        ("account key", DEV_KEY),
        ("wrong key", WRONG_KEY),
        ("SAS token", sas.as_str()),
        ("SAS signature", sas_sig.as_str()),
        ("signed URL signature", url_sig.as_str()),
        ("shared-key authorization", "SharedKey devstoreaccount1:"),
    ] {
        assert!(!logs.contains(secret), "the {what} is in the logs");
    }
    for (at, _) in logs.match_indices("sig=") {
        assert!(
            logs[at + 4..].starts_with("REDACTED"),
            "a signature in the logs: {}",
            &logs[at.saturating_sub(80)..(at + 40).min(logs.len())]
        );
    }
}
