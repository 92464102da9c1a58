//! `polyrouter bench`: the YCSB core workloads through the router, against
//! every record store of a configuration.
//!
//! Each (workload, store) run loads its own records into a bench-only
//! entity ([`BENCH_TABLE`]) of that store, runs the operation mix with
//! `threads` concurrent clients through a [`Repo`](crate::Repo), records
//! every operation's latency in an HDR histogram, then drops the table. The
//! user's entities are never read or written. A workload a store cannot
//! serve (range scans on a key-value store) is refused with the missing
//! capability named, before anything is written.
//!
//! | workload | mix | keys |
//! | --- | --- | --- |
//! | A | 50% read, 50% update | zipfian |
//! | B | 95% read, 5% update | zipfian |
//! | C | 100% read | zipfian |
//! | D | 95% read, 5% insert | latest |
//! | E | 95% scan (1–100 records), 5% insert | zipfian start |
//! | F | 50% read, 50% read-modify-write | zipfian |

use serde::{Deserialize, Serialize};

mod report;
#[cfg(feature = "bench")]
mod run;

pub use report::{BenchReport, OpStats, Run};
#[cfg(feature = "bench")]
pub use run::{BenchOptions, Progress, bench};

/// The table (and entity name) the bench records live in, in every store.
pub const BENCH_TABLE: &str = "polyrouter_bench_usertable";

/// A YCSB core workload.
///
/// ```
/// use polyrouter::bench::Workload;
/// assert_eq!(Workload::parse("e"), Some(Workload::E));
/// assert!(Workload::E.needs_scans() && !Workload::A.needs_scans());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Workload {
    /// Update heavy: 50% read, 50% update.
    A,
    /// Read mostly: 95% read, 5% update.
    B,
    /// Read only.
    C,
    /// Read latest: 95% read (skewed to new records), 5% insert.
    D,
    /// Short ranges: 95% scan, 5% insert.
    E,
    /// Read-modify-write: 50% read, 50% read-modify-write.
    F,
}

/// One operation type of a workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// `get` one record.
    Read,
    /// `put` a record over an existing one.
    Update,
    /// `put` a new record.
    Insert,
    /// A range query of 1–100 records from a key, in key order.
    Scan,
    /// `get`, then `put_if` its version (retried on a conflict).
    ReadModifyWrite,
}

impl Operation {
    /// The name in reports.
    ///
    /// ```
    /// assert_eq!(polyrouter::bench::Operation::ReadModifyWrite.name(), "read_modify_write");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            Operation::Read => "read",
            Operation::Update => "update",
            Operation::Insert => "insert",
            Operation::Scan => "scan",
            Operation::ReadModifyWrite => "read_modify_write",
        }
    }
}

impl Workload {
    /// All six, A to F.
    pub const ALL: [Workload; 6] = [
        Workload::A,
        Workload::B,
        Workload::C,
        Workload::D,
        Workload::E,
        Workload::F,
    ];

    /// `a`…`f` (either case).
    ///
    /// ```
    /// assert_eq!(polyrouter::bench::Workload::parse("B"), Some(polyrouter::bench::Workload::B));
    /// assert_eq!(polyrouter::bench::Workload::parse("g"), None);
    /// ```
    pub fn parse(s: &str) -> Option<Workload> {
        Some(match s.to_ascii_lowercase().as_str() {
            "a" => Workload::A,
            "b" => Workload::B,
            "c" => Workload::C,
            "d" => Workload::D,
            "e" => Workload::E,
            "f" => Workload::F,
            _ => return None,
        })
    }

    /// The lower-case letter.
    ///
    /// ```
    /// assert_eq!(polyrouter::bench::Workload::F.letter(), "f");
    /// ```
    pub fn letter(self) -> &'static str {
        match self {
            Workload::A => "a",
            Workload::B => "b",
            Workload::C => "c",
            Workload::D => "d",
            Workload::E => "e",
            Workload::F => "f",
        }
    }

    /// What it does, in a line.
    ///
    /// ```
    /// assert!(polyrouter::bench::Workload::A.description().contains("50% update"));
    /// ```
    pub fn description(self) -> &'static str {
        match self {
            Workload::A => "update heavy — 50% read, 50% update, zipfian keys",
            Workload::B => "read mostly — 95% read, 5% update, zipfian keys",
            Workload::C => "read only — 100% read, zipfian keys",
            Workload::D => "read latest — 95% read of recent records, 5% insert",
            Workload::E => "short ranges — 95% scan of 1–100 records, 5% insert",
            Workload::F => "read-modify-write — 50% read, 50% read-modify-write, zipfian keys",
        }
    }

    /// The operation mix: (operation, share in percent).
    ///
    /// ```
    /// let mix = polyrouter::bench::Workload::B.mix();
    /// assert_eq!(mix.iter().map(|(_, p)| p).sum::<u32>(), 100);
    /// ```
    pub fn mix(self) -> &'static [(Operation, u32)] {
        use Operation::*;
        match self {
            Workload::A => &[(Read, 50), (Update, 50)],
            Workload::B => &[(Read, 95), (Update, 5)],
            Workload::C => &[(Read, 100)],
            Workload::D => &[(Read, 95), (Insert, 5)],
            Workload::E => &[(Scan, 95), (Insert, 5)],
            Workload::F => &[(Read, 50), (ReadModifyWrite, 50)],
        }
    }

    /// Whether it runs range scans (which need queries, range filters and sort).
    pub fn needs_scans(self) -> bool {
        self == Workload::E
    }
}
