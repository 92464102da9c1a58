//! Verify and repair. Verify scans the source in key order, chunk by
//! chunk, reads the same keys from the target and compares each pair's
//! canonical encoding (missing, changed); then scans the target and looks
//! its keys up in the source (extra). Each side is scanned in its own key
//! order and the other side read by key, so engines that order strings
//! differently (collations) still compare exactly. The cursor is saved
//! after every chunk: a killed verify resumes where it was.

use std::time::Instant;

use super::canonical::same;
use super::driver::Driver;
use super::state::{Difference, Mismatch, Phase, StoredKey, VerifyPass, VerifyState};
use super::{MAX_LISTED, Migration, Pace, Progress, backfill};
use crate::store::VersionedChange;
use crate::{Error, Key, Record, Result};

/// What `repair` did.
///
/// ```
/// let r = polyrouter::migrate::RepairReport::default();
/// assert_eq!(r.repaired + r.already_equal, 0);
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RepairReport {
    /// Keys copied again from the source (or deleted from the target).
    pub repaired: u64,
    /// Keys that were equal on both sides by the time of the repair.
    pub already_equal: u64,
    /// Keys whose target holds a newer version than the source (written to
    /// the target by something else): left as they are, listed.
    pub unrepairable: Vec<Mismatch>,
}

fn equal(m: &Migration, a: Option<&Record>, b: Option<&Record>) -> bool {
    let schema = m.source_info.schema;
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => same(schema, a, b, m.by_version()),
        _ => false,
    }
}

fn note(v: &mut VerifyState, key: &Key, difference: Difference) {
    match difference {
        Difference::Missing => v.missing += 1,
        Difference::Changed => v.changed += 1,
        Difference::Extra => v.extra += 1,
    }
    if v.mismatches.len() < MAX_LISTED {
        v.mismatches.push(Mismatch {
            key: StoredKey::from(key),
            difference,
        });
    }
}

/// How many times, [`RECHECK_DELAY`] apart, a key found different is read
/// again from both sides before it counts: a change still on its way
/// through the dual-write is not a difference.
pub const RECHECKS: u32 = 5;

/// The pause between two re-reads of a key found different.
pub const RECHECK_DELAY: std::time::Duration = std::time::Duration::from_millis(200);

/// The keys among `suspects` that still differ after [`RECHECKS`]
/// re-reads of both sides, with how.
async fn confirm(
    m: &Migration,
    pass: VerifyPass,
    mut suspects: Vec<Key>,
) -> Result<Vec<(Key, Difference)>> {
    let mut round = 0;
    loop {
        if suspects.is_empty() {
            return Ok(Vec::new());
        }
        let sources = m.source.get_many(&m.source_info, &suspects).await?;
        let targets = m.target.get_many(&m.target_info, &suspects).await?;
        let mut still = Vec::new();
        for ((k, s), t) in suspects.iter().zip(sources).zip(targets) {
            let difference = match (pass, &s, &t) {
                (VerifyPass::Source, Some(_), None) => Difference::Missing,
                (VerifyPass::Source, Some(_), Some(_)) if !equal(m, s.as_ref(), t.as_ref()) => {
                    Difference::Changed
                }
                (VerifyPass::Target, None, Some(_)) => Difference::Extra,
                // Equal now, or no longer this pass's business (a key
                // deleted from the source meanwhile is the other pass's).
                _ => continue,
            };
            still.push((k.clone(), difference));
        }
        round += 1;
        if round > RECHECKS || still.is_empty() {
            return Ok(still);
        }
        tokio::time::sleep(RECHECK_DELAY).await;
        suspects = still.into_iter().map(|(k, _)| k).collect();
    }
}

/// Verify and repair compare a copy with its primary: not once the
/// target is the primary, nor while a switch is under way.
fn before_cutover(m: &Migration, phase: Phase, what: &str) -> Result<()> {
    if phase.fenced() || phase.routes_to_target() {
        return Err(m.wrong_phase(phase, what, "a phase before cutover, or `rolled_back`"));
    }
    Ok(())
}

pub(crate) async fn run(m: &Migration, d: &mut Driver, progress: Progress<'_>) -> Result<()> {
    before_cutover(m, d.state.phase, "verify")?;
    if !d.state.backfill.done {
        return Err(Error::invalid_input(
            &m.state_store,
            m.entity(),
            format!(
                "migration `{}` has not finished its backfill; run `polyrouter migrate start` first",
                m.name
            ),
        ));
    }
    let resume = d.state.phase == Phase::Verify && d.state.verify.as_ref().is_some_and(|v| !v.done);
    if !resume {
        d.state.verify = Some(VerifyState {
            started_ms: crate::lease::now_ms(),
            ..VerifyState::default()
        });
    }
    d.state.phase = Phase::Verify;
    d.save().await?;
    let mut pace = Pace::new(m.config.rate);
    loop {
        let t = Instant::now();
        let v = d.state.verify.as_mut().expect("set above");
        let (scan, scan_info, other, other_info) = match v.pass {
            VerifyPass::Source => (&m.source, &m.source_info, &m.target, &m.target_info),
            VerifyPass::Target => (&m.target, &m.target_info, &m.source, &m.source_info),
        };
        let rows =
            backfill::chunk(scan.as_ref(), scan_info, v.cursor.as_ref(), m.config.batch).await?;
        let n = rows.len();
        if let Some(last) = rows.last() {
            let keys: Vec<Key> = rows.iter().map(|r| r.key.clone()).collect();
            let found = other
                .get_many(other_info, &keys)
                .await
                .map_err(|e| e.with_entity(m.entity()))?;
            let mut suspects = Vec::new();
            for (row, there) in rows.iter().zip(&found) {
                let differs = match v.pass {
                    VerifyPass::Source => !equal(m, Some(row), there.as_ref()),
                    VerifyPass::Target => there.is_none(),
                };
                if differs {
                    suspects.push(row.key.clone());
                }
            }
            let pass = v.pass;
            for (key, difference) in confirm(m, pass, suspects).await? {
                note(v, &key, difference);
            }
            match v.pass {
                VerifyPass::Source => v.source_rows += n as u64,
                VerifyPass::Target => v.target_rows += n as u64,
            }
            v.cursor = Some(StoredKey::from(&last.key));
        }
        if n < m.config.batch {
            match v.pass {
                VerifyPass::Source => {
                    v.pass = VerifyPass::Target;
                    v.cursor = None;
                }
                VerifyPass::Target => v.done = true,
            }
        }
        v.busy_ms += t.elapsed().as_millis() as u64;
        let done = v.done;
        let differences = v.differences();
        if done {
            d.state.phase = if differences == 0 {
                Phase::Verified
            } else {
                Phase::Differences
            };
        }
        d.save().await?;
        progress(&d.state);
        if done {
            return Ok(());
        }
        pace.done(n as u64).await;
    }
}

pub(crate) async fn repair(m: &Migration, d: &mut Driver) -> Result<RepairReport> {
    before_cutover(m, d.state.phase, "repair")?;
    let Some(v) = d.state.verify.as_ref().filter(|v| v.done) else {
        return Err(Error::invalid_input(
            &m.state_store,
            m.entity(),
            format!(
                "migration `{}` has no finished verify to repair from; run `polyrouter migrate verify` first",
                m.name
            ),
        ));
    };
    let listed = v.mismatches.clone();
    let mut report = RepairReport::default();
    for part in listed.chunks(m.config.batch) {
        let keys: Vec<Key> = part.iter().map(|x| x.key.key()).collect();
        let sources = m.source.get_many(&m.source_info, &keys).await?;
        let targets = m.target.get_many(&m.target_info, &keys).await?;
        let mut changes = Vec::new();
        let mut which = Vec::new();
        for ((mm, s), t) in part.iter().zip(sources).zip(targets) {
            if equal(m, s.as_ref(), t.as_ref()) {
                report.already_equal += 1;
                continue;
            }
            match (s, t) {
                // Fed by change capture, the target holds log positions as
                // versions: the source's row goes just above the target's
                // version, below any change still on its way (each lies
                // further on in the log).
                (Some(mut s), Some(t)) if !m.by_version() => {
                    s.version = s.version.max(t.version + 1);
                    changes.push(VersionedChange::put(s));
                }
                (Some(s), t) if t.as_ref().is_none_or(|t| t.version < s.version) => {
                    changes.push(VersionedChange::put(s));
                }
                // The source deleted the key: its tombstone is above every
                // version the target got from it.
                (None, Some(t)) => changes.push(VersionedChange::delete(t.key, t.version + 1)),
                _ => {
                    report.unrepairable.push(mm.clone());
                    continue;
                }
            }
            which.push(mm.clone());
        }
        let applied = m.target.apply_versioned(&m.target_info, changes).await?;
        for (a, mm) in applied.into_iter().zip(which) {
            if a.applied() {
                report.repaired += 1;
            } else {
                report.unrepairable.push(mm);
            }
        }
    }
    let v = d.state.verify.as_mut().expect("checked above");
    v.mismatches = report.unrepairable.clone();
    d.state.phase = Phase::Backfilled;
    d.save().await?;
    Ok(report)
}
