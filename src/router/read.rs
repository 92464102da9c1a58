//! The read path under a consistency level: cache, replica, primary.

use std::time::Duration;

use super::Bound;
use super::cache::{Entry, now_us};
use super::metrics::EntityMetrics;
use super::replica::Replica;
use super::session::{DELETED, Session};
use crate::config::Consistency;
use crate::{Key, Record, Result};

/// Where a read was answered from.
///
/// ```
/// assert_ne!(polyrouter::router::ReadSource::Cache, polyrouter::router::ReadSource::Primary);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadSource {
    /// The primary store.
    Primary,
    /// The cache store.
    Cache,
    /// The `read_from` replica.
    Replica,
}

/// How a read was answered: source, staleness, version, age.
///
/// ```
/// let m = polyrouter::router::ReadMeta::primary(Some(3));
/// assert!(!m.stale && m.version == Some(3));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadMeta {
    /// Where the answer came from.
    pub source: ReadSource,
    /// True when an expired cache entry was served because the primary was
    /// unavailable (`stale_if_error`).
    pub stale: bool,
    /// The record's version (`None` when not found).
    pub version: Option<u64>,
    /// For cache answers, how long ago the entry was filled; for replica
    /// answers under `bounded_staleness`, the most the replica's copy can
    /// be behind (its measured lag plus the time since it was measured).
    pub age: Option<Duration>,
}

impl ReadMeta {
    /// A fresh answer from the primary.
    ///
    /// ```
    /// assert_eq!(polyrouter::router::ReadMeta::primary(None).source, polyrouter::router::ReadSource::Primary);
    /// ```
    pub fn primary(version: Option<u64>) -> Self {
        ReadMeta {
            source: ReadSource::Primary,
            stale: false,
            version,
            age: None,
        }
    }
}

/// The version a copy must have for this level and session (0: any).
fn required(level: Consistency, session: Option<&Session>, entity: &str, key: &Key) -> u64 {
    match (level, session) {
        (Consistency::ReadYourWrites, Some(s)) => s.written(entity, key),
        (Consistency::Monotonic, Some(s)) => s.seen(entity, key),
        _ => 0,
    }
}

/// Callers share a flight only when the leader's cache re-check would
/// accept nothing they would refuse: same bound, same version floor.
fn flight_class(bound: Option<Duration>, need: u64) -> (u64, u64) {
    (bound.map_or(u64::MAX, |b| b.as_micros() as u64), need)
}

fn entry_ok(e: &Entry, need: u64) -> bool {
    match &e.record {
        Some(_) => need != DELETED && e.version >= need,
        None => need == 0 || need == DELETED,
    }
}

fn note_seen(b: &Bound, session: Option<&Session>, key: &Key, rec: &Option<Record>) {
    if let (Some(s), Some(r)) = (session, rec) {
        s.record_seen(b.info.name(), key, r.version);
    }
}

async fn primary_get(b: &Bound, key: &Key) -> Result<Option<Record>> {
    EntityMetrics::add(&b.metrics.primary_reads);
    let got = match &b.coalesce {
        Some(c) => c.get(key).await,
        None => b.store.get(&b.info, key).await,
    };
    got.map_err(|e| e.with_entity(b.info.name()))
}

/// The replica, when this read may use it: always without a bound; under
/// `bounded_staleness` only while its measured lag proves it within the
/// bound (then with that staleness).
async fn readable_replica(
    b: &Bound,
    bound: Option<Duration>,
) -> Option<(&Replica, Option<Duration>)> {
    let replica = b.replica.as_ref()?;
    match bound {
        None => Some((replica, None)),
        Some(bound) => replica
            .within(bound, &b.metrics)
            .await
            .map(|staleness| (replica, Some(staleness))),
    }
}

/// One key under `level`.
pub(crate) async fn read_one(
    b: &Bound,
    key: &Key,
    level: Consistency,
    session: Option<&Session>,
) -> Result<(Option<Record>, ReadMeta)> {
    let entity = b.info.name();
    let m = &b.metrics;
    if level == Consistency::Strong || (b.cache.is_none() && b.replica.is_none()) {
        let rec = primary_get(b, key).await?;
        note_seen(b, session, key, &rec);
        let v = rec.as_ref().map(|r| r.version);
        return Ok((rec, ReadMeta::primary(v)));
    }
    let need = required(level, session, entity, key);
    let bound = match level {
        Consistency::BoundedStaleness(d) => Some(d.0),
        _ => None,
    };
    let mut expired: Option<Entry> = None;
    if let Some(cache) = &b.cache {
        let now = now_us();
        let entry = cache
            .lookup_many(std::slice::from_ref(key), entity, m)
            .await
            .pop()
            .flatten();
        match entry {
            Some(e)
                if cache.fresh(&e, now)
                    && bound.is_none_or(|bd| e.age(now) <= bd)
                    && entry_ok(&e, need) =>
            {
                EntityMetrics::add(if e.record.is_some() {
                    &m.cache_hits
                } else {
                    &m.negative_hits
                });
                note_seen(b, session, key, &e.record);
                let meta = ReadMeta {
                    source: ReadSource::Cache,
                    stale: false,
                    version: e.record.as_ref().map(|r| r.version),
                    age: Some(e.age(now)),
                };
                return Ok((e.record, meta));
            }
            Some(e) => {
                EntityMetrics::add(&m.cache_misses);
                if cache.stale_usable(&e, now) && entry_ok(&e, need) && bound.is_none() {
                    expired = Some(e);
                }
            }
            None => EntityMetrics::add(&m.cache_misses),
        }
    }
    if let Some((replica, age)) = readable_replica(b, bound).await {
        match replica.store.get(&replica.info, key).await {
            Ok(Some(r)) if need != DELETED && r.version >= need => {
                EntityMetrics::add(&m.replica_reads);
                let rec = Some(r);
                note_seen(b, session, key, &rec);
                let v = rec.as_ref().map(|r| r.version);
                let meta = ReadMeta {
                    source: ReadSource::Replica,
                    age,
                    ..ReadMeta::primary(v)
                };
                return Ok((rec, meta));
            }
            Ok(_) => {}
            Err(e) => {
                EntityMetrics::add(&m.replica_errors);
                m.warn_cache(replica.store.name(), entity, "replica read", &e);
            }
        }
    }
    let result = match &b.cache {
        Some(cache) => {
            let (res, led) = cache
                .single_flight(key, flight_class(bound, need), || async {
                    // A caller may have missed the cache just before the
                    // previous flight filled it: look again before reading.
                    let epoch = cache.epoch(key);
                    let again = cache
                        .lookup_many(std::slice::from_ref(key), entity, m)
                        .await
                        .pop()
                        .flatten();
                    let now = now_us();
                    if let Some(e) = again.filter(|e| {
                        cache.fresh(e, now)
                            && bound.is_none_or(|bd| e.age(now) <= bd)
                            && entry_ok(e, need)
                    }) {
                        return Ok(e.record);
                    }
                    let rec = primary_get(b, key).await?;
                    cache
                        .fill(&[(key.clone(), rec.clone(), epoch)], entity, m)
                        .await;
                    Ok(rec)
                })
                .await;
            if !led {
                EntityMetrics::add(&m.coalesced);
            }
            match res {
                // The shared read may predate this session's write.
                Ok(rec)
                    if need > 0 && rec.as_ref().map_or(need != DELETED, |r| r.version < need) =>
                {
                    primary_get(b, key).await
                }
                other => other.map_err(|e| e.with_entity(entity)),
            }
        }
        None => primary_get(b, key).await,
    };
    match result {
        Ok(rec) => {
            note_seen(b, session, key, &rec);
            let v = rec.as_ref().map(|r| r.version);
            Ok((rec, ReadMeta::primary(v)))
        }
        Err(e) if e.is_transient() && expired.is_some() => {
            let e = expired.unwrap_or_else(|| unreachable!());
            EntityMetrics::add(&m.stale_served);
            let now = now_us();
            note_seen(b, session, key, &e.record);
            let meta = ReadMeta {
                source: ReadSource::Cache,
                stale: true,
                version: Some(e.version),
                age: Some(e.age(now)),
            };
            Ok((e.record, meta))
        }
        Err(e) => Err(e),
    }
}

/// Many keys under `level`: one cache lookup, one replica lookup and one
/// primary `get_many` for what is left (no single-flight here).
pub(crate) async fn read_many(
    b: &Bound,
    keys: &[Key],
    level: Consistency,
    session: Option<&Session>,
) -> Result<Vec<Option<Record>>> {
    let entity = b.info.name();
    let m = &b.metrics;
    let primary_many = |ks: Vec<Key>| async move {
        EntityMetrics::add(&m.primary_reads);
        b.store
            .get_many(&b.info, &ks)
            .await
            .map_err(|e| e.with_entity(entity))
    };
    let mut out: Vec<Option<Option<Record>>> = vec![None; keys.len()];
    let direct = level == Consistency::Strong || (b.cache.is_none() && b.replica.is_none());
    let bound = match level {
        Consistency::BoundedStaleness(d) => Some(d.0),
        _ => None,
    };
    let needs: Vec<u64> = keys
        .iter()
        .map(|k| required(level, session, entity, k))
        .collect();
    if !direct {
        if let Some(cache) = &b.cache {
            let now = now_us();
            let entries = cache.lookup_many(keys, entity, m).await;
            for (i, e) in entries.into_iter().enumerate() {
                match e {
                    Some(e)
                        if cache.fresh(&e, now)
                            && bound.is_none_or(|bd| e.age(now) <= bd)
                            && entry_ok(&e, needs[i]) =>
                    {
                        EntityMetrics::add(if e.record.is_some() {
                            &m.cache_hits
                        } else {
                            &m.negative_hits
                        });
                        out[i] = Some(e.record);
                    }
                    _ => EntityMetrics::add(&m.cache_misses),
                }
            }
        }
        let missing: Vec<usize> = (0..keys.len()).filter(|i| out[*i].is_none()).collect();
        let replica = match missing.is_empty() {
            true => None,
            false => readable_replica(b, bound).await,
        };
        if let Some((replica, _)) = replica {
            let ks: Vec<Key> = missing.iter().map(|i| keys[*i].clone()).collect();
            match replica.store.get_many(&replica.info, &ks).await {
                Ok(recs) if recs.len() == ks.len() => {
                    for (i, r) in missing.into_iter().zip(recs) {
                        if let Some(r) = r.filter(|r| needs[i] != DELETED && r.version >= needs[i])
                        {
                            EntityMetrics::add(&m.replica_reads);
                            out[i] = Some(Some(r));
                        }
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    EntityMetrics::add(&m.replica_errors);
                    m.warn_cache(replica.store.name(), entity, "replica read", &e);
                }
            }
        }
    }
    let missing: Vec<usize> = (0..keys.len()).filter(|i| out[*i].is_none()).collect();
    if !missing.is_empty() {
        let ks: Vec<Key> = missing.iter().map(|i| keys[*i].clone()).collect();
        let epochs: Vec<u64> = match (&b.cache, direct) {
            (Some(c), false) => ks.iter().map(|k| c.epoch(k)).collect(),
            _ => Vec::new(),
        };
        let recs = primary_many(ks.clone()).await?;
        if recs.len() != ks.len() {
            return Err(crate::Error::backend(
                &b.info.store,
                entity,
                format!(
                    "get_many returned {} slots for {} keys",
                    recs.len(),
                    ks.len()
                ),
            ));
        }
        if let (Some(cache), false) = (&b.cache, direct) {
            let fills: Vec<(Key, Option<Record>, u64)> = ks
                .iter()
                .cloned()
                .zip(recs.iter().cloned())
                .zip(epochs)
                .map(|((k, r), e)| (k, r, e))
                .collect();
            cache.fill(&fills, entity, m).await;
        }
        for (i, r) in missing.into_iter().zip(recs) {
            out[i] = Some(r);
        }
    }
    let out: Vec<Option<Record>> = out.into_iter().map(Option::flatten).collect();
    for (k, r) in keys.iter().zip(&out) {
        note_seen(b, session, k, r);
    }
    Ok(out)
}
