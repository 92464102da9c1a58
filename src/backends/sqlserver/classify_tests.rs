//! How SQL Server's error numbers are classified (docs/resilience.md).
//! tiberius' server error values cannot be built outside the driver, so
//! the numbers are checked on the function that `map_err` calls with them.

use std::time::Duration;

use super::map_server_error;
use crate::{Error, Rejection};

fn classify(code: u32) -> Error {
    map_server_error(
        "orders",
        "order",
        code,
        format!("server error {code} for a test"),
    )
}

#[test]
fn deadlock_victims_and_lock_timeouts_are_rejected_as_aborted() {
    for code in [1205, 1222] {
        let e = classify(code);
        assert!(
            matches!(
                e,
                Error::Rejected {
                    reason: Rejection::Aborted,
                    ..
                }
            ),
            "{code}: {e:?}"
        );
    }
}

#[test]
fn service_busy_is_throttled_with_azure_sqls_ten_seconds() {
    let e = classify(40501);
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
    assert_eq!(e.retry_after(), Some(Duration::from_secs(10)));
    for code in [10928, 10929, 49918] {
        assert!(matches!(
            classify(code),
            Error::Rejected {
                reason: Rejection::Throttled,
                ..
            }
        ));
    }
}

#[test]
fn database_unavailable_is_unavailable_with_the_outcome_unknown() {
    for code in [40613, 40197, 4060] {
        let e = classify(code);
        assert!(matches!(e, Error::Unavailable { .. }), "{code}: {e:?}");
        assert!(!e.nothing_applied());
    }
}

#[test]
fn other_numbers_are_not_transient() {
    assert!(matches!(classify(8152), Error::InvalidInput { .. }));
    assert!(matches!(classify(102), Error::Backend { .. }));
}
