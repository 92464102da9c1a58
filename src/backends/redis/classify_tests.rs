//! How Redis' errors are classified (docs/resilience.md), on error replies
//! the real server sends.

use super::map_err;
use crate::{Error, Rejection};

const URL: &str = "redis://127.0.0.1:6379";

async fn connection() -> redis::aio::MultiplexedConnection {
    redis::Client::open(URL)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .expect("the machine's Redis at 127.0.0.1:6379 must run")
}

/// The reply error the server sends for a script returning `reply`.
async fn replied(reply: &str) -> redis::RedisError {
    let script = format!("return redis.error_reply('{reply}')");
    redis::cmd("EVAL")
        .arg(script)
        .arg(0)
        .query_async::<()>(&mut connection().await)
        .await
        .unwrap_err()
}

#[tokio::test]
async fn busy_loading_and_tryagain_are_throttled_and_not_applied() {
    for reply in [
        "BUSY Redis is busy running a script",
        "LOADING Redis is loading the dataset in memory",
        "TRYAGAIN Multiple keys request during rehashing of slot",
    ] {
        let e = map_err("cache", "127.0.0.1:6379", "session", replied(reply).await);
        assert!(
            matches!(&e, Error::Rejected { reason: Rejection::Throttled, store, .. } if store == "cache"),
            "{reply}: {e:?}"
        );
        assert!(e.nothing_applied(), "{e}");
    }
}

#[tokio::test]
async fn a_killed_connection_is_unavailable_with_the_outcome_unknown() {
    let client = redis::Client::open(URL).unwrap();
    let mut victim = client.get_multiplexed_async_connection().await.unwrap();
    let id: i64 = redis::cmd("CLIENT")
        .arg("ID")
        .query_async(&mut victim)
        .await
        .unwrap();
    let _: () = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("ID")
        .arg(id)
        .query_async(&mut connection().await)
        .await
        .map(|_: i64| ())
        .unwrap();
    let err = redis::cmd("PING")
        .query_async::<String>(&mut victim)
        .await
        .unwrap_err();
    let e = map_err("cache", "127.0.0.1:6379", "session", err);
    assert!(matches!(e, Error::Unavailable { .. }), "{e:?}");
    assert!(!e.nothing_applied());
}

#[tokio::test]
async fn other_error_replies_are_not_transient() {
    let e = map_err(
        "cache",
        "127.0.0.1:6379",
        "session",
        replied("ERR something else").await,
    );
    assert!(matches!(e, Error::Backend { .. }), "{e:?}");
}

/// A connection reset while the server answered leaves a truncated reply,
/// which the driver reports as a parse error: the outcome is unknown.
#[test]
fn a_reply_cut_off_mid_stream_is_unavailable() {
    let cut = redis::parse_redis_value(b"$10\r\nabc").unwrap_err();
    let e = map_err("cache", "127.0.0.1:6379", "session", cut);
    assert!(matches!(e, Error::Unavailable { .. }), "{e:?}");
    assert!(!e.nothing_applied());
}

/// A cluster changing under a call (`MOVED`, `ASK`, `READONLY` left after
/// the driver's retries) is transient, but not "nothing applied": an
/// earlier attempt of the driver may have been.
#[tokio::test]
async fn moved_ask_and_readonly_are_unavailable_with_unknown_outcome() {
    for reply in [
        "MOVED 3999 127.0.0.1:7102",
        "ASK 3999 127.0.0.1:7102",
        "READONLY You cannot write against a read only replica.",
    ] {
        let e = map_err("cache", "127.0.0.1:7101", "session", replied(reply).await);
        assert!(
            matches!(&e, Error::Unavailable { store, .. } if store == "cache"),
            "{reply}: {e:?}"
        );
        assert!(e.is_transient() && !e.nothing_applied(), "{e}");
        assert!(e.to_string().contains("slots are moving"), "{e}");
    }
}
