//! The benches' database servers: the URL from the environment, else the
//! machine's server on loopback.

/// `POLYROUTER_BENCH_POSTGRES`, else `postgres://postgres@127.0.0.1:5432/test`.
#[cfg(feature = "postgres")]
pub fn postgres_url() -> String {
    std::env::var("POLYROUTER_BENCH_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// `POLYROUTER_BENCH_MYSQL`, else `mysql://root@127.0.0.1:3306/test`.
#[cfg(feature = "mysql")]
pub fn mysql_url() -> String {
    std::env::var("POLYROUTER_BENCH_MYSQL")
        .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".into())
}
