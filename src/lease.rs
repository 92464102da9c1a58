//! Leases with expiry, kept in a record and taken by conditional writes.
//!
//! A lease says which worker owns a piece of work until when. It is not a
//! lock the store enforces: it is two fields of a record (the owner and the
//! expiry, in milliseconds since the Unix epoch) that every writer updates
//! with [`Precondition::Version`](crate::Precondition::Version) — the
//! version read with the lease. So exactly one of two workers racing for an
//! expired lease wins (the other gets [`Error::Conflict`](crate::Error::Conflict)),
//! and a worker that lost its lease (it stalled past the expiry and another
//! took over) finds out at its next write, which fails the same way: the
//! record's version is the fencing token.
//!
//! The saga log keeps its lease in the saga's own record, so taking,
//! renewing and releasing it costs no write of its own: each is part of a
//! write the log makes anyway (see docs/sagas.md).
//!
//! ```
//! use std::time::Duration;
//! use polyrouter::lease::Lease;
//! let now = 1_000;
//! let lease = Lease::grant("worker-a", now, Duration::from_secs(5));
//! assert!(lease.held_by("worker-a", now + 4_999));
//! assert!(!lease.is_free(now + 4_999));
//! assert!(lease.is_free(now + 5_000)); // expired: anyone may take it over
//! assert!(Lease::released().is_free(now));
//! ```

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Who owns a piece of work, and until when.
///
/// ```
/// let l = polyrouter::lease::Lease::released();
/// assert_eq!(l.owner, None);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The owner's id; `None` when released.
    pub owner: Option<String>,
    /// Expiry, in milliseconds since the Unix epoch.
    pub until_ms: i64,
}

impl Lease {
    /// A lease for `owner` from `now_ms` for `ttl`.
    ///
    /// ```
    /// let l = polyrouter::lease::Lease::grant("w", 10, std::time::Duration::from_millis(5));
    /// assert_eq!(l.until_ms, 15);
    /// ```
    pub fn grant(owner: &str, now_ms: i64, ttl: Duration) -> Lease {
        Lease {
            owner: Some(owner.to_string()),
            until_ms: now_ms.saturating_add(ttl.as_millis().min(i64::MAX as u128) as i64),
        }
    }

    /// No owner: free for anyone.
    ///
    /// ```
    /// assert!(polyrouter::lease::Lease::released().is_free(0));
    /// ```
    pub fn released() -> Lease {
        Lease {
            owner: None,
            until_ms: 0,
        }
    }

    /// Whether anyone may take the lease at `now_ms`: released or expired.
    ///
    /// ```
    /// let l = polyrouter::lease::Lease::grant("w", 0, std::time::Duration::from_millis(5));
    /// assert!(!l.is_free(4));
    /// assert!(l.is_free(5));
    /// ```
    pub fn is_free(&self, now_ms: i64) -> bool {
        self.owner.is_none() || now_ms >= self.until_ms
    }

    /// Whether `owner` holds the lease at `now_ms` (named and not expired).
    ///
    /// ```
    /// let l = polyrouter::lease::Lease::grant("w", 0, std::time::Duration::from_millis(5));
    /// assert!(l.held_by("w", 1));
    /// assert!(!l.held_by("v", 1));
    /// ```
    pub fn held_by(&self, owner: &str, now_ms: i64) -> bool {
        self.owner.as_deref() == Some(owner) && now_ms < self.until_ms
    }

    /// Time left at `now_ms` (zero when expired or released).
    ///
    /// ```
    /// let l = polyrouter::lease::Lease::grant("w", 0, std::time::Duration::from_millis(5));
    /// assert_eq!(l.remaining(2).as_millis(), 3);
    /// ```
    pub fn remaining(&self, now_ms: i64) -> Duration {
        if self.owner.is_none() {
            return Duration::ZERO;
        }
        Duration::from_millis(self.until_ms.saturating_sub(now_ms).max(0) as u64)
    }
}

/// Milliseconds since the Unix epoch, the clock leases are read against.
/// Workers sharing a log need clocks within a small fraction of the lease.
///
/// ```
/// assert!(polyrouter::lease::now_ms() > 1_600_000_000_000);
/// ```
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
