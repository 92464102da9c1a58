//! How MariaDB's errors are classified (docs/resilience.md), on errors the
//! real server sends.

use super::map_err;
use crate::{Error, Rejection};

const URL: &str = "mysql://root@127.0.0.1:3306/test";

async fn pool() -> sqlx::MySqlPool {
    sqlx::mysql::MySqlPoolOptions::new()
        .max_connections(2)
        .connect(URL)
        .await
        .expect("the machine's MariaDB at 127.0.0.1:3306 (db `test`) must run")
}

/// The error the server sends for `SIGNAL` with this error number.
async fn signalled(number: u16) -> sqlx::Error {
    let sql = format!(
        "SIGNAL SQLSTATE '40001' SET MYSQL_ERRNO = {number}, MESSAGE_TEXT = 'signalled for a test'"
    );
    sqlx::raw_sql(&sql)
        .execute(&pool().await)
        .await
        .unwrap_err()
}

#[tokio::test]
async fn deadlocks_and_lock_wait_timeouts_are_rejected_as_aborted() {
    for number in [1213, 1205] {
        let e = map_err("main", "user", signalled(number).await);
        assert!(
            matches!(&e, Error::Rejected { reason: Rejection::Aborted, store, .. } if store == "main"),
            "{number}: {e:?}"
        );
        assert!(
            e.nothing_applied() && e.to_string().contains(&number.to_string()),
            "{e}"
        );
    }
}

#[tokio::test]
async fn too_many_connections_is_throttled() {
    let e = map_err("main", "", signalled(1040).await);
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
}

/// 2006 ("server has gone away") and 2013 ("lost connection") are the
/// client library's names for a connection the server closed: here, one
/// killed by `KILL`.
#[tokio::test]
async fn a_killed_connection_is_unavailable_with_the_outcome_unknown() {
    let pool = pool().await;
    let mut victim = pool.acquire().await.unwrap();
    let id: u64 = sqlx::query_scalar("SELECT CONNECTION_ID()")
        .fetch_one(&mut *victim)
        .await
        .unwrap();
    let admin = sqlx::MySqlPool::connect(URL).await.unwrap();
    sqlx::raw_sql(&format!("KILL {id}"))
        .execute(&admin)
        .await
        .unwrap();
    let err = sqlx::query("SELECT 1")
        .execute(&mut *victim)
        .await
        .unwrap_err();
    let e = map_err("main", "user", err);
    assert!(matches!(e, Error::Unavailable { .. }), "{e:?}");
    assert!(e.is_transient() && !e.nothing_applied(), "{e}");
    for number in [1053, 1927] {
        let e = map_err("main", "user", signalled(number).await);
        assert!(matches!(e, Error::Unavailable { .. }), "{number}: {e:?}");
    }
}

#[tokio::test]
async fn other_server_errors_are_not_transient() {
    let e = map_err("main", "user", signalled(1064).await);
    assert!(matches!(e, Error::Backend { .. }), "{e:?}");
}
