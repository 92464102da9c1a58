//! How PostgreSQL's errors are classified (docs/resilience.md), on errors
//! the real server sends.

use super::map_err;
use crate::{Error, Rejection};

const URL: &str = "postgres://postgres@127.0.0.1:5432/test";

async fn pool() -> sqlx::PgPool {
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(URL)
        .await
        .expect("the machine's PostgreSQL at 127.0.0.1:5432 (db `test`) must run")
}

/// The error the server sends for `RAISE ... USING ERRCODE = state`.
async fn raised(state: &str) -> sqlx::Error {
    let sql = format!(
        "DO $$ BEGIN RAISE EXCEPTION 'raised for a test' USING ERRCODE = '{state}'; END $$"
    );
    sqlx::raw_sql(&sql)
        .execute(&pool().await)
        .await
        .unwrap_err()
}

#[tokio::test]
async fn serialization_failures_and_deadlocks_are_rejected_as_aborted() {
    for state in ["40001", "40P01"] {
        let e = map_err("main", "user", raised(state).await);
        assert!(
            matches!(&e, Error::Rejected { reason: Rejection::Aborted, store, entity, .. } if store == "main" && entity == "user"),
            "{state}: {e:?}"
        );
        assert!(e.is_transient() && e.nothing_applied(), "{state}: {e}");
        assert!(e.to_string().contains(state), "{e}");
    }
}

#[tokio::test]
async fn a_server_refusing_connections_is_throttled() {
    for state in ["57P03", "53300"] {
        let e = map_err("main", "", raised(state).await);
        assert!(
            matches!(
                e,
                Error::Rejected {
                    reason: Rejection::Throttled,
                    ..
                }
            ),
            "{state}: {e:?}"
        );
    }
}

#[tokio::test]
async fn a_terminated_backend_is_unavailable_with_the_outcome_unknown() {
    let pool = pool().await;
    let mut victim = pool.acquire().await.unwrap();
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut *victim)
        .await
        .unwrap();
    let admin = sqlx::PgPool::connect(URL).await.unwrap();
    sqlx::query("SELECT pg_terminate_backend($1)")
        .bind(pid)
        .execute(&admin)
        .await
        .unwrap();
    // The next statement meets the server's FATAL 57P01, or the closed socket.
    let err = sqlx::query("SELECT 1")
        .execute(&mut *victim)
        .await
        .unwrap_err();
    let e = map_err("main", "user", err);
    assert!(matches!(e, Error::Unavailable { .. }), "{e:?}");
    assert!(e.is_transient() && !e.nothing_applied(), "{e}");
    // 57P01 itself, as the server sends it.
    let e = map_err("main", "user", raised("57P01").await);
    assert!(matches!(e, Error::Unavailable { .. }), "{e:?}");
}

#[test]
fn a_connection_reset_is_unavailable() {
    let reset = sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
    let e = map_err("main", "user", reset);
    assert!(matches!(e, Error::Unavailable { .. }), "{e:?}");
    assert!(!e.nothing_applied());
}

#[tokio::test]
async fn other_server_errors_are_not_transient() {
    let e = map_err("main", "user", raised("42601").await);
    assert!(matches!(e, Error::Backend { .. }), "{e:?}");
    assert!(!e.is_transient());
}
