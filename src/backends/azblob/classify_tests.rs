//! How Azure Blob Storage's answers are classified (docs/resilience.md),
//! on the SDK's own error values.

use azure_core::error::{Error as AzureError, ErrorKind};
use azure_core::http::StatusCode;

use super::*;
use crate::{Error, Rejection};

fn answered(status: u16, code: &str) -> AzureError {
    AzureError::with_message(
        ErrorKind::HttpResponse {
            status: StatusCode::from(status),
            error_code: Some(code.into()),
            raw_response: None,
        },
        "answered for a test",
    )
}

/// A store on Azurite (`scripts/emulators/start`); the container is
/// removed at the end of each test.
async fn store(tag: &str) -> AzBlobStore {
    let endpoint = std::env::var("POLYROUTER_TEST_AZBLOB_URL")
        .unwrap_or_else(|_| format!("http://127.0.0.1:10000/{DEV_ACCOUNT}"));
    let container = format!("pr-classify-{tag}-{}", std::process::id());
    AzBlobStore::open("images", AzBlobConfig::dev(&container, &endpoint))
        .await
        .expect("Azurite must answer (scripts/emulators/start)")
}

#[tokio::test]
async fn server_busy_is_throttled_and_not_applied() {
    let s = store("busy").await;
    let e = s.err(answered(503, "ServerBusy"), "put `a.png`");
    assert!(
        matches!(
            e,
            Error::Rejected {
                reason: Rejection::Throttled,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.nothing_applied());
    s.delete_container().await.unwrap();
}

#[tokio::test]
async fn internal_errors_and_timeouts_are_unavailable() {
    let s = store("internal").await;
    for (status, code) in [
        (500, "InternalError"),
        (500, "OperationTimedOut"),
        (408, ""),
    ] {
        let e = s.err(answered(status, code), "put `a.png`");
        assert!(matches!(e, Error::Unavailable { .. }), "{status}: {e:?}");
        assert!(!e.nothing_applied());
    }
    let e = s.err(answered(400, "InvalidHeaderValue"), "put `a.png`");
    assert!(!e.is_transient(), "{e:?}");
    s.delete_container().await.unwrap();
}
