//! How Cosmos DB's answers are classified (docs/resilience.md), on the
//! client's own error values.

use std::time::Duration;

use azure_core::http::StatusCode;
use azure_data_cosmos::{CosmosError, CosmosStatus};

use super::map_status;
use crate::{Error, Rejection};

fn answered(code: u16) -> CosmosError {
    CosmosError::builder()
        .with_status(CosmosStatus::new(StatusCode::from(code)))
        .with_message("answered for a test")
        .build()
}

fn classify(code: Option<u16>, retry_after: Option<Duration>) -> Error {
    let e = answered(code.unwrap_or(503));
    map_status(
        "docs",
        "http://127.0.0.1:8081/shop",
        "product",
        code,
        retry_after,
        e,
    )
}

#[test]
fn throttling_is_rejected_with_the_wait_the_service_asked_for() {
    let e = classify(Some(429), Some(Duration::from_millis(1500)));
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
    assert_eq!(e.retry_after(), Some(Duration::from_millis(1500)));
    assert!(e.nothing_applied());
    assert_eq!(classify(Some(429), None).retry_after(), None);
}

#[test]
fn retry_with_is_rejected_as_aborted() {
    let e = classify(Some(449), None);
    assert!(
        matches!(
            e,
            Error::Rejected {
                reason: Rejection::Aborted,
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn service_unavailable_timeouts_and_no_answer_are_unavailable() {
    for code in [None, Some(408), Some(500), Some(503), Some(504)] {
        let e = classify(code, None);
        assert!(matches!(e, Error::Unavailable { .. }), "{code:?}: {e:?}");
        assert!(!e.nothing_applied());
    }
}

#[test]
fn client_errors_are_not_transient() {
    for code in [400, 401, 404, 409] {
        assert!(!classify(Some(code), None).is_transient(), "{code}");
    }
}

#[test]
fn the_retry_after_header_is_read_from_a_wire_answer() {
    // A synthetic error carries no response, hence no header.
    let e = answered(429);
    assert!(e.response().is_none());
    let mapped = super::map_err("docs", "loc", "product", e);
    assert_eq!(mapped.retry_after(), None);
}
