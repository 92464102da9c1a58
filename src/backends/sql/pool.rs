//! Pool, timeout and TLS options the server-based SQL stores share.

use serde::Deserialize;

use crate::config::ConfigDuration;

/// How the connection is encrypted (`ssl_mode`), as in libpq.
///
/// ```
/// use polyrouter::backends::sql::SslMode;
/// let m: SslMode = serde_json::from_str("\"verify-full\"").unwrap();
/// assert_eq!(m, SslMode::VerifyFull);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SslMode {
    /// Never TLS.
    Disable,
    /// TLS when the server offers it (the default).
    Prefer,
    /// TLS or fail; the certificate is not checked.
    Require,
    /// TLS with a certificate signed by a trusted CA (`ssl_root_cert` or the
    /// system roots).
    VerifyCa,
    /// As `verify-ca`, and the certificate names the host.
    VerifyFull,
}

/// Checks pool and TLS options; on error, the option key and what is wrong.
///
/// ```
/// use polyrouter::backends::sql::{SslMode, check_pool_options};
/// assert!(check_pool_options(8, 2, None, None, Some(SslMode::Prefer), None).is_ok());
/// assert_eq!(check_pool_options(2, 3, None, None, None, None).unwrap_err().0, "min_connections");
/// ```
pub fn check_pool_options(
    max_connections: u32,
    min_connections: u32,
    acquire_timeout: Option<&ConfigDuration>,
    idle_timeout: Option<&ConfigDuration>,
    ssl_mode: Option<SslMode>,
    ssl_root_cert: Option<&str>,
) -> Result<(), (&'static str, String)> {
    if max_connections == 0 {
        return Err(("max_connections", "must be at least 1".into()));
    }
    if min_connections > max_connections {
        return Err((
            "min_connections",
            format!(
                "{min_connections} is more than max_connections ({max_connections}); lower it or raise max_connections"
            ),
        ));
    }
    if acquire_timeout.is_some_and(|d| d.0.is_zero()) {
        return Err(("acquire_timeout", "must be more than 0s".into()));
    }
    let _ = idle_timeout; // "0s" means: never close idle connections.
    if let Some(path) = ssl_root_cert {
        if ssl_mode == Some(SslMode::Disable) {
            return Err((
                "ssl_root_cert",
                "is set but ssl_mode is \"disable\"; remove one of them".into(),
            ));
        }
        if let Err(e) = std::fs::metadata(path) {
            return Err((
                "ssl_root_cert",
                format!("cannot read the CA certificate file {path:?}: {e}"),
            ));
        }
    }
    Ok(())
}

/// The default of `ping_after_idle`: a pooled connection idle this long is
/// pinged before use.
pub const DEFAULT_PING_AFTER_IDLE: std::time::Duration = std::time::Duration::from_secs(30);

/// Pings a pooled connection before handing it out only when it sat idle
/// in the pool for at least `after` (`ping_after_idle`; zero: always, as
/// sqlx's `test_before_acquire`). sqlx already pings every connection when
/// it is released, so a connection idle for less than `after` was alive a
/// moment ago; what the ping still catches is one a firewall, a NAT or the
/// server's idle timeout closed while it waited. A connection that died
/// since (a server restart) fails its call with the transient
/// [`Error::Unavailable`](crate::Error::Unavailable), which the resilience
/// layer retries for reads and idempotent writes (docs/configuration.md
/// has the trade-off). A failed ping discards the connection and the pool
/// takes another.
///
/// ```
/// # #[cfg(feature = "postgres")] {
/// use polyrouter::backends::sql::ping_after_idle;
/// let opts = ping_after_idle(sqlx::postgres::PgPoolOptions::new(), std::time::Duration::from_secs(30));
/// assert!(!opts.get_test_before_acquire());
/// # }
/// ```
pub fn ping_after_idle<DB: sqlx::Database>(
    options: sqlx::pool::PoolOptions<DB>,
    after: std::time::Duration,
) -> sqlx::pool::PoolOptions<DB> {
    use sqlx::Connection;
    options
        .test_before_acquire(false)
        .before_acquire(move |conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= after {
                    conn.ping().await?;
                }
                Ok(true)
            })
        })
}
