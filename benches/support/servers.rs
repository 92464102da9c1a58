//! The benches' database servers: the URL from the environment, else the
//! machine's server on loopback; and removing what a bench wrote to Redis.

/// `POLYROUTER_BENCH_POSTGRES`, else `postgres://postgres@127.0.0.1:5432/test`.
#[cfg(feature = "postgres")]
#[allow(dead_code)] // not every bench that includes this file uses PostgreSQL
pub fn postgres_url() -> String {
    std::env::var("POLYROUTER_BENCH_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// `POLYROUTER_BENCH_MYSQL`, else `mysql://root@127.0.0.1:3306/test`.
#[cfg(feature = "mysql")]
#[allow(dead_code)] // not every bench that includes this file uses MariaDB
pub fn mysql_url() -> String {
    std::env::var("POLYROUTER_BENCH_MYSQL")
        .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".into())
}

/// Deletes every Redis key matching `pattern` (SCAN + DEL, 1 000 keys a
/// step, never a blocking `KEYS`); returns how many were deleted.
#[cfg(feature = "redis")]
#[allow(dead_code)] // not every bench that includes this file writes to Redis
pub async fn delete_redis_keys(
    conn: &mut impl redis::aio::ConnectionLike,
    pattern: &str,
) -> redis::RedisResult<u64> {
    let mut deleted = 0;
    let mut cursor = 0u64;
    loop {
        let (next, keys): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(conn)
            .await?;
        if !keys.is_empty() {
            let n: u64 = redis::cmd("DEL").arg(&keys).query_async(conn).await?;
            deleted += n;
        }
        if next == 0 {
            return Ok(deleted);
        }
        cursor = next;
    }
}
