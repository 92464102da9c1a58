//! Cache-aside: entries in a cache store, filled after primary reads and
//! deleted after writes; single-flight for concurrent misses.
//!
//! An entry is one record of a private entity in the cache store (table
//! `{table}__cache`): the key, the primary record encoded as JSON text
//! (`null` for a negative "not found" entry), the record's version, and
//! the time it was filled (unix microseconds). Freshness is decided by the
//! fill time, so one entry can serve `ttl`, a tighter `bounded_staleness`
//! bound, and (kept `stale_if_error` longer in the store) a stale fallback.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use parking_lot::Mutex;
use serde_json::{Value as Json, json};
use tokio::sync::OnceCell;

use super::metrics::EntityMetrics;
use crate::store::{EntityInfo, WriteOp};
use crate::{
    Error, FieldDef, FieldKind, Key, KeyKind, Precondition, Record, Result, Schema, Store, Value,
};

const STRIPES: usize = 64;

static STR_FIELDS: [FieldDef; 4] = fields(FieldKind::String);
static INT_FIELDS: [FieldDef; 4] = fields(FieldKind::Int);
static UUID_FIELDS: [FieldDef; 4] = fields(FieldKind::Uuid);
static STR_SCHEMA: Schema = schema(KeyKind::Str, &STR_FIELDS);
static INT_SCHEMA: Schema = schema(KeyKind::Int, &INT_FIELDS);
static UUID_SCHEMA: Schema = schema(KeyKind::Uuid, &UUID_FIELDS);

const fn fields(key: FieldKind) -> [FieldDef; 4] {
    [
        FieldDef::required("key", key),
        FieldDef::nullable("rec", FieldKind::String),
        FieldDef::required("ver", FieldKind::Int),
        FieldDef::required("filled_us", FieldKind::Int),
    ]
}

const fn schema(key_kind: KeyKind, fields: &'static [FieldDef]) -> Schema {
    Schema {
        name: "polyrouter_cache",
        key: "key",
        key_kind,
        partition_key: None,
        version: None,
        fields,
    }
}

/// The private entity cache entries of `table` live in.
pub(crate) fn cache_entity(key_kind: KeyKind, table: &str, store: &str) -> EntityInfo {
    let schema = match key_kind {
        KeyKind::Str => &STR_SCHEMA,
        KeyKind::Int => &INT_SCHEMA,
        KeyKind::Uuid => &UUID_SCHEMA,
    };
    EntityInfo {
        table: format!("{table}__cache"),
        store: store.to_string(),
        // A cache entry's version is the primary's: no tombstones needed.
        tombstone_retention: std::time::Duration::ZERO,
        ..EntityInfo::new(schema)
    }
}

/// Wall-clock microseconds: entries may be shared by processes.
pub(crate) fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// One cache entry: the record (`None`: negative), its version, when filled.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub record: Option<Record>,
    pub version: u64,
    pub filled_us: u64,
}

impl Entry {
    pub fn age(&self, now: u64) -> Duration {
        Duration::from_micros(now.saturating_sub(self.filled_us))
    }
}

/// The shared outcome of one single-flight primary read.
type Flight = std::result::Result<Option<Record>, Arc<Error>>;

/// A key and the class of entries its callers accept.
type FlightId = (Key, (u64, u64));

/// One entity's cache route.
pub(crate) struct CacheRoute {
    pub store: Arc<dyn Store>,
    pub info: EntityInfo,
    pub ttl: Duration,
    pub negative_ttl: Option<Duration>,
    pub stale_if_error: Option<Duration>,
    pub timeout: Duration,
    flights: Mutex<HashMap<FlightId, Arc<OnceCell<Flight>>>>,
    epochs: [AtomicU64; STRIPES],
}

impl std::fmt::Debug for CacheRoute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheRoute")
            .field("store", &self.store.name())
            .field("table", &self.info.table)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

fn stripe(key: &Key) -> usize {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut h);
    (h.finish() as usize) % STRIPES
}

impl CacheRoute {
    pub fn new(
        store: Arc<dyn Store>,
        info: EntityInfo,
        config: &crate::config::CacheConfig,
    ) -> Self {
        CacheRoute {
            store,
            info,
            ttl: config.ttl.map_or(Duration::from_secs(3600), |d| d.0),
            negative_ttl: config.negative_ttl.map(|d| d.0),
            stale_if_error: config.stale_if_error.map(|d| d.0),
            timeout: config.timeout.map_or(Duration::from_millis(100), |d| d.0),
            flights: Mutex::new(HashMap::new()),
            epochs: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    /// Whether `entry` is within its TTL.
    pub fn fresh(&self, entry: &Entry, now: u64) -> bool {
        let ttl = if entry.record.is_some() {
            self.ttl
        } else {
            self.negative_ttl.unwrap_or(Duration::ZERO)
        };
        entry.age(now) < ttl
    }

    /// Whether an expired entry may still be served as stale.
    pub fn stale_usable(&self, entry: &Entry, now: u64) -> bool {
        entry.record.is_some()
            && self
                .stale_if_error
                .is_some_and(|s| entry.age(now) < self.ttl + s)
    }

    /// The write counter of a key's stripe: a fill is skipped when it
    /// changed during the primary read it would store.
    pub fn epoch(&self, key: &Key) -> u64 {
        self.epochs[stripe(key)].load(Ordering::SeqCst)
    }

    pub fn bump(&self, keys: &[Key]) {
        for k in keys {
            self.epochs[stripe(k)].fetch_add(1, Ordering::SeqCst);
        }
    }

    async fn guarded<F: Future<Output = Result<R>>, R>(&self, f: F) -> Result<R> {
        match tokio::time::timeout(self.timeout, f).await {
            Ok(r) => r,
            Err(_) => Err(Error::unavailable(
                self.store.name(),
                "",
                format!("no answer within the cache timeout ({:?})", self.timeout),
            )),
        }
    }

    /// Looks entries up; a failing or slow cache answers "nothing", counted
    /// and logged (rate-limited).
    pub async fn lookup_many(
        &self,
        keys: &[Key],
        entity: &str,
        m: &EntityMetrics,
    ) -> Vec<Option<Entry>> {
        let got = match keys {
            [one] => self
                .guarded(self.store.get(&self.info, one))
                .await
                .map(|r| vec![r]),
            _ => self.guarded(self.store.get_many(&self.info, keys)).await,
        };
        match got.and_then(|recs| {
            recs.into_iter()
                .map(|r| r.map(decode).transpose())
                .collect::<Result<Vec<_>>>()
        }) {
            Ok(v) if v.len() == keys.len() => v,
            Ok(_) => vec![None; keys.len()],
            Err(e) => {
                EntityMetrics::add(&m.cache_errors);
                m.warn_cache(self.store.name(), entity, "read", &e);
                vec![None; keys.len()]
            }
        }
    }

    /// Stores entries for records just read from the primary, skipping keys
    /// written since `epochs` were taken and negatives when not configured.
    pub async fn fill(
        &self,
        found: &[(Key, Option<Record>, u64)],
        entity: &str,
        m: &EntityMetrics,
    ) {
        let now = now_us();
        let mut ops = Vec::new();
        for (key, rec, epoch) in found {
            if self.epoch(key) != *epoch {
                EntityMetrics::add(&m.fills_skipped);
                continue;
            }
            let ttl = match rec {
                Some(_) => self
                    .ttl
                    .saturating_add(self.stale_if_error.unwrap_or_default()),
                None => match self.negative_ttl {
                    Some(t) => t,
                    None => continue,
                },
            };
            match encode(&self.info, key, rec.as_ref(), now) {
                Ok(record) => ops.push(WriteOp::Put {
                    record,
                    precondition: Precondition::None,
                    ttl: Some(ttl),
                }),
                Err(e) => m.warn_cache(self.store.name(), entity, "encode", &e),
            }
        }
        if ops.is_empty() {
            return;
        }
        let n = ops.len() as u64;
        match self.guarded(self.store.write(&self.info, ops, false)).await {
            Ok(_) => {
                m.fills.fetch_add(n, Ordering::Relaxed);
            }
            Err(e) => {
                EntityMetrics::add(&m.cache_errors);
                m.warn_cache(self.store.name(), entity, "fill", &e);
            }
        }
    }

    /// Deletes the entries of written keys (never writes a value).
    pub async fn invalidate(&self, keys: &[Key], entity: &str, m: &EntityMetrics) {
        if keys.is_empty() {
            return;
        }
        let ops = keys
            .iter()
            .map(|k| WriteOp::Delete {
                key: k.clone(),
                precondition: Precondition::None,
            })
            .collect();
        match self.store.write(&self.info, ops, false).await {
            Ok(_) => {
                m.invalidations
                    .fetch_add(keys.len() as u64, Ordering::Relaxed);
            }
            Err(e) => {
                m.invalidation_errors
                    .fetch_add(keys.len() as u64, Ordering::Relaxed);
                m.warn_cache(self.store.name(), entity, "invalidation", &e);
            }
        }
    }

    /// Runs `read` once for all concurrent callers of the same key (and
    /// the same `class` of acceptable entries).
    /// Returns the result and whether this caller ran it.
    pub async fn single_flight<F, Fut>(
        &self,
        key: &Key,
        class: (u64, u64),
        read: F,
    ) -> (Result<Option<Record>>, bool)
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<Record>>>,
    {
        let id = (key.clone(), class);
        let cell = self
            .flights
            .lock()
            .entry(id.clone())
            .or_insert_with(|| Arc::new(OnceCell::new()))
            .clone();
        let led = std::sync::atomic::AtomicBool::new(false);
        let out = cell
            .get_or_init(|| async {
                led.store(true, Ordering::SeqCst);
                read().await.map_err(Arc::new)
            })
            .await
            .clone();
        let led = led.load(Ordering::SeqCst);
        if led {
            let mut flights = self.flights.lock();
            if flights.get(&id).is_some_and(|c| Arc::ptr_eq(c, &cell)) {
                flights.remove(&id);
            }
        }
        // Every caller gets the leader's error, variant and all (a timeout
        // or an open circuit stays one: "primary unavailable" to the read
        // path, as `Error::is_transient` says).
        let out = out.map_err(|e| e.clone_lossy());
        (out, led)
    }
}

fn encode(info: &EntityInfo, key: &Key, rec: Option<&Record>, now: u64) -> Result<Record> {
    let mut out = Record::new(key.clone());
    out.set("key", key.to_value());
    match rec {
        Some(r) => {
            out.set("rec", Value::String(record_json(r).to_string()));
            out.set("ver", Value::I64(r.version as i64));
        }
        None => {
            out.set("rec", Value::Null);
            out.set("ver", Value::I64(0));
        }
    }
    out.set("filled_us", Value::I64(now as i64));
    let _ = info;
    Ok(out)
}

fn decode(rec: Record) -> Result<Entry> {
    let bad = |m: &str| Error::backend("cache", "", format!("unreadable cache entry: {m}"));
    let version = match rec.value("ver") {
        Value::I64(v) => *v as u64,
        _ => return Err(bad("no version")),
    };
    let filled_us = match rec.value("filled_us") {
        Value::I64(v) => *v as u64,
        _ => return Err(bad("no fill time")),
    };
    let record = match rec.value("rec") {
        Value::Null => None,
        Value::String(s) => {
            let j: Json = serde_json::from_str(s).map_err(|e| bad(&e.to_string()))?;
            let mut r = json_record(rec.key.clone(), &j).ok_or_else(|| bad("bad record"))?;
            r.version = version;
            Some(r)
        }
        _ => return Err(bad("bad record field")),
    };
    Ok(Entry {
        record,
        version,
        filled_us,
    })
}

/// A record as tagged JSON: `[[name, tag, value], ...]`, exact for every
/// [`Value`] (bytes as base64, timestamps as microseconds, floats as text).
fn record_json(r: &Record) -> Json {
    Json::Array(
        r.fields
            .iter()
            .map(|(n, v)| {
                let (tag, val) = match v {
                    Value::Null => ("n", Json::Null),
                    Value::Bool(b) => ("b", json!(b)),
                    Value::I64(i) => ("i", json!(i)),
                    Value::F64(f) => ("f", json!(f.to_string())),
                    Value::String(s) => ("s", json!(s)),
                    Value::Bytes(b) => ("y", json!(STANDARD.encode(b))),
                    Value::Timestamp(t) => ("t", json!(t.timestamp_micros())),
                    Value::Uuid(u) => ("u", json!(u.to_string())),
                    Value::Json(j) => ("j", j.clone()),
                };
                json!([n.as_ref(), tag, val])
            })
            .collect(),
    )
}

fn json_record(key: Key, j: &Json) -> Option<Record> {
    let mut r = Record::new(key);
    for item in j.as_array()? {
        let [n, tag, val] = item.as_array()?.as_slice() else {
            return None;
        };
        let v = match tag.as_str()? {
            "n" => Value::Null,
            "b" => Value::Bool(val.as_bool()?),
            "i" => Value::I64(val.as_i64()?),
            "f" => Value::F64(val.as_str()?.parse().ok()?),
            "s" => Value::String(val.as_str()?.to_string()),
            "y" => Value::Bytes(STANDARD.decode(val.as_str()?).ok()?),
            "t" => Value::Timestamp(chrono::DateTime::from_timestamp_micros(val.as_i64()?)?),
            "u" => Value::Uuid(val.as_str()?.parse().ok()?),
            "j" => Value::Json(val.clone()),
            _ => return None,
        };
        r.fields.push((n.as_str()?.to_string().into(), v));
    }
    Some(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_every_value() {
        let mut r = Record::new(Key::from("k"));
        r.version = 7;
        r.set("n", Value::Null);
        r.set("b", Value::Bool(true));
        r.set("i", Value::I64(-3));
        r.set("f", Value::F64(f64::INFINITY));
        r.set("g", Value::F64(0.1));
        r.set("s", Value::from("x\"y"));
        r.set("y", Value::Bytes(vec![0, 255]));
        r.set("t", Value::timestamp(chrono::Utc::now()));
        r.set("u", Value::Uuid(uuid::Uuid::new_v4()));
        r.set("j", Value::Json(json!({"a": [1, 2]})));
        let info = cache_entity(KeyKind::Str, "t", "c");
        let e = decode(encode(&info, &r.key, Some(&r), 5).unwrap()).unwrap();
        assert_eq!(e.record.unwrap(), r);
        assert_eq!((e.version, e.filled_us), (7, 5));
        let neg = decode(encode(&info, &r.key, None, 9).unwrap()).unwrap();
        assert!(neg.record.is_none());
    }
}
